"""The demo's account protections: login throttling and Django's password
validators."""

import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from testing_support.asgi_server import ROOT
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
    """Guest names come from the connection's opaque presence key (an HMAC of the
    channel with a secret of the process): 100,000 connections get 100,000 names,
    a page derives the same name from the key alone, and no name shows its channel
    (nobody can compute or pick someone's name from the channel name)."""
    from project.demo.presence import guest_name, own_guest_name

    channels = [f"aether.abc123!{n}" for n in range(100_000)]
    names = {own_guest_name(channel) for channel in channels}
    assert len(names) == len(channels)
    assert own_guest_name(channels[0]) == own_guest_name(channels[0])
    assert guest_name("anon-0123456789abcdef") == "guest-0123456789ab"
    assert all(name.startswith("guest-") and "aether" not in name for name in names)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py` in a subprocess with exactly the demo's environment variables
    given (no DJANGO_* from this process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_settings_pass_check_deploy():
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="chat.example.com",
        DJANGO_HTTPS="1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_without_a_secret_key_only_development_starts():
    refused = manage("check")
    assert refused.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in refused.stderr
    assert manage("check", DJANGO_DEBUG="1").returncode == 0


@pytest.mark.e2e
def test_as_shipped_the_demo_shows_no_debug_page_and_logs_no_traceback():
    """DEBUG is off by default: a wrong Host header gets a plain 400 (no settings
    page, so no Redis URL), logged as one line; a path-traversal static request is
    a 404; the stylesheet is still served."""
    with daphne_server() as server:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/static/demo/site.css", timeout=10) as ok:
            assert ok.status == 200
        for path in ("/static/..%2f..%2fconfig%2fsettings.py", "/static/../x.py"):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(base + path, timeout=10)
            missing.value.close()
            assert missing.value.code == 404
        bad_host = urllib.request.Request(base + "/", headers={"Host": "evil.test"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad_host, timeout=10)
        body = refused.value.read().decode()
        refused.value.close()
        assert refused.value.code == 400
        assert "SECRET" not in body
        assert "REDIS" not in body
        assert len(body) < 2000
        Browser(server.url).get("/")  # a request after: the log is flushed past it
        log = server.log
    assert "Traceback" not in log
    assert "ERROR" not in log
    assert "Invalid HTTP_HOST header: 'evil.test'" in log
