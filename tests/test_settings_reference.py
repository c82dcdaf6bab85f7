"""docs/settings.md against the code: every layer CONFIG key with its default, every
WebSocket limit with its default, every `AETHER_*` Django setting the package reads
and every environment variable the demo reads are in the reference."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from aether_compat.layers import InMemoryChannelLayer, RedisChannelLayer
from aether_compat.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "settings.md").read_text()


def rows() -> dict[str, str]:
    """Each table row of the reference by the keys in its first cell."""
    found = {}
    for line in REFERENCE.splitlines():
        if not line.startswith("| `"):
            continue
        first, *rest = line.strip("|").split("|")
        for key in re.findall(r"`([^`]+)`", first):
            found.setdefault(key, "|".join(rest))
    return found


def shown(value: object) -> list[str]:
    """How a default may be written in the reference (60, 60.0, 65,536, None...)."""
    if value is None:
        return ["`None`", "unset"]
    if isinstance(value, str):
        return [f'`"{value}"`']
    if isinstance(value, float) and value.is_integer():
        return [f"`{int(value)}`", f"`{value}`", f"{value}", f"{int(value)}"]
    return [f"`{value}`", f"{value:,}", str(value)]


@pytest.mark.parametrize("layer", [InMemoryChannelLayer, RedisChannelLayer])
def test_every_config_key_is_listed_with_its_default(layer):
    table = rows()
    for name, parameter in inspect.signature(layer).parameters.items():
        assert name in table, f"CONFIG key {name!r} of {layer.__name__} is missing"
        if name in ("hosts", "group_options"):
            continue  # a structure, described in words
        row = table[name]
        assert any(form in row for form in shown(parameter.default)), (name, row)


def test_every_websocket_limit_is_listed_with_its_default():
    table = rows()
    for field in dataclasses.fields(Limits):
        row = table.get(field.name)
        assert row is not None, f"limit {field.name!r} is missing"
        assert any(form in row for form in shown(field.default)), (field.name, row)


def test_every_setting_and_environment_variable_read_is_listed():
    table = rows()
    package = "\n".join(p.read_text() for p in (ROOT / "aether_compat").rglob("*.py"))
    settings = set(re.findall(r'settings, "(AETHER_\w+)"', package))
    assert settings  # the pattern still finds them
    demo = (ROOT / "project" / "config" / "settings.py").read_text()
    environment = set(re.findall(r'environ\.get\("(\w+)"', demo))
    assert {"DJANGO_DEBUG", "AETHER_REDIS_URL"} <= environment
    missing = sorted(name for name in settings | environment if name not in table)
    assert not missing, f"not in docs/settings.md: {missing}"
