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


# Every setting and CONFIG key the settings page names, with one wrong value each.
LIMIT = "aether_compat.E001"
CONFIG = "aether_compat.E004"


def _config(backend: str, **config: object) -> dict[str, object]:
    return {"CHANNEL_LAYERS": {"default": {"BACKEND": backend, "CONFIG": config}}}


BAD = {
    "AETHER_WEBSOCKET_LIMITS": ({"AETHER_WEBSOCKET_LIMITS": []}, LIMIT),
    "AETHER_GROUP_POLICY": ({"AETHER_GROUP_POLICY": "x.Y"}, "aether_compat.E002"),
    "AETHER_ALLOW_ANONYMOUS_ROOMS": (
        {"AETHER_ALLOW_ANONYMOUS_ROOMS": 1},
        "aether_compat.E003",
    ),
    "AETHER_METRICS": ({"AETHER_METRICS": "on"}, "aether_compat.E006"),
    "AETHER_METRICS_TOKEN": ({"AETHER_METRICS_TOKEN": "short"}, "aether_compat.E007"),
    "AETHER_IDEMPOTENCY_WINDOW": (
        {"AETHER_IDEMPOTENCY_WINDOW": 0},
        "aether_compat.E008",
    ),
    "expiry": (_config(MEMORY, expiry=0), CONFIG),
    "group_expiry": (_config(MEMORY, group_expiry=-1), CONFIG),
    "capacity": (_config(MEMORY, capacity=1.5), CONFIG),
    "channel_capacity": (_config(MEMORY, channel_capacity={"x*": 0}), CONFIG),
    "delivery_timeout": (_config(MEMORY, delivery_timeout="2"), CONFIG),
    "group_options": (_config(MEMORY, group_options={"r:*": {"histry": 1}}), CONFIG),
    "hosts": (_config(REDIS, hosts="redis://x"), CONFIG),
    "prefix": (_config(REDIS, prefix="a{b}"), CONFIG),
    "presence_timeout": (_config(REDIS, presence_timeout=0), CONFIG),
    "symmetric_encryption_keys": (
        _config(REDIS, symmetric_encryption_keys="one"),
        CONFIG,
    ),
    "serializer_format": (_config(REDIS, serializer_format="pickle"), CONFIG),
    "random_prefix_length": (_config(REDIS, random_prefix_length=-1), CONFIG),
}
for _key in (
    "max_frame_bytes",
    "close_frame_bytes",
    "max_groups",
    "commands_per_second",
    "command_burst",
    "outbound_limit_bytes",
    "outbound_grace_seconds",
    "heartbeat_interval",
    "rights_check_seconds",
    "heartbeat_timeout",
    "max_lifetime_seconds",
):
    BAD[_key] = ({"AETHER_WEBSOCKET_LIMITS": {_key: 0}}, LIMIT)
# Accepted for channels_redis compatibility and unused: no value is wrong.
UNCHECKED = {"on_disconnect", "on_reconnect"}


def documented_settings() -> set[str]:
    """The names in the first column of the settings page's tables of Django
    settings, WebSocket limits and layer CONFIG keys (not the comparison table)."""
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
    names: set[str] = set()
    section = ""
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            section = line
        elif line.startswith("| `") and not any(
            skip in section for skip in ("differs", "Environment")
        ):
            first = line.split("|")[1]
            names.update(part.strip(" `") for part in first.split(","))
    return names


def test_every_documented_setting_has_a_bad_value_case():
    documented = documented_settings()
    assert "AETHER_METRICS" in documented
    assert documented - UNCHECKED <= set(BAD), documented - UNCHECKED - set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_of_each_setting_is_reported(name):
    overrides, expected = BAD[name]
    with override_settings(**overrides):
        found = errors()
    assert [id_ for id_, _ in found] == [expected], found


def test_the_metrics_token_is_never_printed():
    with override_settings(AETHER_METRICS_TOKEN="short-secret"):
        ((_, message),) = errors()
    assert "short-secret" not in message
    assert "12 characters" in message
