"""The demo's account protections: login throttling and Django's password
validators."""

import urllib.error

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tests.support.servers import PASSWORD, Browser, daphne_server


@pytest.mark.e2e
def test_five_wrong_passwords_lock_that_login_out():
    """The 5th failed login of one username from one address locks that pair
    out: even the right password is refused for a while (429); other users are
    not affected."""
    with daphne_server() as server:
        attacker = Browser(server.url)
        for _ in range(4):
            page = attacker.post("/login/", {"username": "alice", "password": "x"})
            assert "Please enter a correct username and password" in page
        for password in ("x", PASSWORD):
            with pytest.raises(urllib.error.HTTPError) as refused:
                attacker.post("/login/", {"username": "alice", "password": password})
            refused.value.close()
            assert refused.value.code == 429
        assert attacker.cookie("sessionid") is None
        Browser(server.url).login("bob")  # another username still logs in
        assert "Traceback" not in server.log


@pytest.mark.parametrize("password", ["123", "password", "12345678901234"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_long_unusual_password_is_accepted():
    validate_password("correct horse battery staple 42")


def test_guest_names_are_keyed_and_do_not_collide():
    """Guest names come from the connection and SECRET_KEY: 100,000 connections
    get 100,000 names, and another key gives other names (nobody can compute or
    pick someone's name from the channel name alone)."""
    from django.test import override_settings

    from project.demo.presence import guest_name

    channels = [f"aether.abc123!{n}" for n in range(100_000)]
    names = {guest_name(channel) for channel in channels}
    assert len(names) == len(channels)
    first = guest_name(channels[0])
    assert guest_name(channels[0]) == first
    with override_settings(SECRET_KEY="another-key-" + "x" * 40):
        assert guest_name(channels[0]) != first
