"""System checks: every wrong package setting is reported by `manage.py check`, with
an id and the rule, before any connection is made."""

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from aether_compat.checks import TAG

MEMORY = "aether_compat.layers.InMemoryChannelLayer"
REDIS = "aether_compat.layers.RedisChannelLayer"


def errors() -> list[tuple[str, str]]:
    return [(m.id, m.msg) for m in run_checks(tags=[TAG])]


def test_the_demo_settings_pass():
    assert errors() == []


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"commands_per_secnd": 5}, "unknown key(s) ['commands_per_secnd']"),
        ({"max_groups": 0}, "must be positive"),
        ({"max_frame_bytes": "64k"}, "must be a number"),
        ([("max_groups", 5)], "must be a dict"),
    ],
)
def test_bad_websocket_limits(limits, words):
    with override_settings(AETHER_WEBSOCKET_LIMITS=limits):
        found = errors()
    assert [id_ for id_, _ in found] == ["aether_compat.E001"]
    assert words in found[0][1]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AETHER_GROUP_POLICY": "no.such.Policy"}, "aether_compat.E002"),
        ({"AETHER_GROUP_POLICY": "collections.OrderedDict"}, "aether_compat.E002"),
        ({"AETHER_ALLOW_ANONYMOUS_ROOMS": "yes"}, "aether_compat.E003"),
    ],
)
def test_bad_policy_settings(overrides, expected):
    with override_settings(**overrides):
        assert [id_ for id_, _ in errors()] == [expected]


def test_a_policy_that_builds_passes():
    with override_settings(
        AETHER_GROUP_POLICY="aether_compat.permissions.DefaultGroupPolicy"
    ):
        assert errors() == []


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"BACKEND": MEMORY, "CONFIG": {"capacity": 0}}, "capacity"),
        ({"BACKEND": MEMORY, "CONFIG": {"capacty": 10}}, "capacty"),
        ({"BACKEND": MEMORY, "CONFIG": ["capacity", 10]}, "must be a dict"),
        ({"BACKEND": REDIS, "CONFIG": {"hosts": "redis://x"}}, "list of hosts"),
        ({"BACKEND": REDIS, "CONFIG": {"prefix": "a{b}"}}, "prefix"),
        ({"BACKEND": REDIS, "CONFIG": {"presence_timeout": -1}}, "presence_timeout"),
        ({"BACKEND": "aether_compat.layers.RedisLayer"}, "cannot be imported"),
    ],
)
def test_bad_layer_config_names_the_alias_and_the_key(entry, words):
    layers = {"default": {"BACKEND": MEMORY}, "fanout": entry}
    with override_settings(CHANNEL_LAYERS=layers):
        found = errors()
    assert len(found) == 1, found
    id_, message = found[0]
    assert id_ in ("aether_compat.E004", "aether_compat.E005")
    assert "CHANNEL_LAYERS['fanout']" in message
    assert words in message


def test_other_backends_are_left_to_channels():
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert errors() == []


def test_manage_py_check_reports_a_bad_setting():
    """The checks run with Django's own command, which fails on them."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with (
        override_settings(AETHER_WEBSOCKET_LIMITS={"max_groups": -1}),
        pytest.raises(SystemCheckError, match=r"aether_compat\.E001"),
    ):
        call_command("check")
