"""Django system checks for the package's settings, so that a typo shows up at
`manage.py check` and at startup instead of at the first connection.

Each check applies the same validation the code applies when it uses the setting
(`Limits.from_mapping`, `get_group_policy`, the layer's own constructor), so the
two can never disagree. Building a layer connects to nothing.
"""

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .layers.base import AetherLayer
from .limits import Limits
from .permissions import get_group_policy

TAG = "aether_compat"


@register(TAG)
def check_websocket_limits(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """AETHER_WEBSOCKET_LIMITS: known keys, positive numbers."""
    value = getattr(settings, "AETHER_WEBSOCKET_LIMITS", None)
    if value is not None and not isinstance(value, dict):
        return [
            Error(
                "AETHER_WEBSOCKET_LIMITS must be a dict of limits, "
                f"got {type(value).__name__}",
                hint=_limits_hint(),
                id="aether_compat.E001",
            )
        ]
    try:
        Limits.from_mapping(value)
    except (TypeError, ValueError) as exc:
        return [Error(str(exc), hint=_limits_hint(), id="aether_compat.E001")]
    return []


@register(TAG)
def check_group_policy(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """AETHER_GROUP_POLICY builds a policy; AETHER_ALLOW_ANONYMOUS_ROOMS is a bool."""
    errors = []
    allow = getattr(settings, "AETHER_ALLOW_ANONYMOUS_ROOMS", False)
    if not isinstance(allow, bool):
        errors.append(
            Error(
                f"AETHER_ALLOW_ANONYMOUS_ROOMS must be True or False, got {allow!r}",
                id="aether_compat.E003",
            )
        )
    try:
        get_group_policy()
    except Exception as exc:
        errors.append(
            Error(
                f"AETHER_GROUP_POLICY could not build a group policy: {exc}",
                hint="Name a class or factory, as a dotted path, that takes no "
                "arguments and returns an object with may_join(user, group) and "
                "may_send(user, group).",
                id="aether_compat.E002",
            )
        )
    return errors


@register(TAG)
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every CHANNEL_LAYERS entry that uses one of our layers: its CONFIG builds."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return []  # Channels reports this one itself
    return [error for alias, entry in layers.items() for error in _layer(alias, entry)]


def _layer(alias: str, entry: Any) -> Iterable[Error]:
    if not isinstance(entry, dict) or not isinstance(entry.get("BACKEND"), str):
        return
    backend = entry["BACKEND"]
    try:
        layer_class = import_string(backend)
    except ImportError as exc:
        if backend.startswith("aether_compat."):
            yield Error(
                f"CHANNEL_LAYERS[{alias!r}]['BACKEND'] {backend!r} cannot be "
                f"imported: {exc}",
                hint="aether_compat.layers.InMemoryChannelLayer or "
                "aether_compat.layers.RedisChannelLayer",
                id="aether_compat.E005",
            )
        return
    if not (isinstance(layer_class, type) and issubclass(layer_class, AetherLayer)):
        return
    config = entry.get("CONFIG", {})
    if not isinstance(config, dict):
        yield Error(
            f"CHANNEL_LAYERS[{alias!r}]['CONFIG'] must be a dict, "
            f"got {type(config).__name__}",
            id="aether_compat.E004",
        )
        return
    try:
        layer_class(**config)
    except (TypeError, ValueError) as exc:
        yield Error(
            f"CHANNEL_LAYERS[{alias!r}]['CONFIG'] is refused by "
            f"{layer_class.__name__}: {exc}",
            hint="docs/settings.md lists every CONFIG key with its default.",
            id="aether_compat.E004",
        )


@register(TAG)
def check_operations(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """AETHER_METRICS, AETHER_METRICS_TOKEN, AETHER_IDEMPOTENCY_WINDOW."""
    found: list[Error | Warning] = []
    metrics = getattr(settings, "AETHER_METRICS", True)
    if not isinstance(metrics, bool):
        found.append(
            Error(
                f"AETHER_METRICS must be True or False, got {metrics!r}",
                id="aether_compat.E006",
            )
        )
    elif metrics and hasattr(settings, "AETHER_METRICS") and not _has_prometheus():
        found.append(
            Warning(
                "AETHER_METRICS is True but prometheus_client is not installed: "
                "no metrics are recorded",
                hint="pip install 'aether_compat[metrics]', or set "
                "AETHER_METRICS = False",
                id="aether_compat.W001",
            )
        )
    token = getattr(settings, "AETHER_METRICS_TOKEN", None)
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        found.append(
            Error(
                "AETHER_METRICS_TOKEN must be None or a string of at least 16 "
                f"characters, got {_shown(token)}",
                hint="Generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'",
                id="aether_compat.E007",
            )
        )
    window = getattr(settings, "AETHER_IDEMPOTENCY_WINDOW", 300)
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        found.append(
            Error(
                "AETHER_IDEMPOTENCY_WINDOW must be a positive number of seconds, "
                f"got {window!r}",
                id="aether_compat.E008",
            )
        )
    return found


def _has_prometheus() -> bool:
    from . import metrics

    return metrics.prometheus_client is not None


def _shown(token: Any) -> str:
    """A token is a secret: say what is wrong without printing it."""
    if isinstance(token, str):
        return f"{len(token)} characters"
    return type(token).__name__


def _limits_hint() -> str:
    defaults = Limits()
    known = ", ".join(
        f"{field.name}={getattr(defaults, field.name)!r}" for field in fields(Limits)
    )
    return f"Known keys and their defaults: {known}."
