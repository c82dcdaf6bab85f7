"""The backends, named for `settings.CHANNEL_LAYERS`: `aether_compat.layers.` +
`InMemoryChannelLayer` or `RedisChannelLayer`.

The Redis layer is imported on first use, so that the in-memory layer works in an
install without redis-py (`pip install aether_compat`, without the `redis` extra).
"""

from typing import TYPE_CHECKING, Any

from .base import AetherLayer, is_aether_layer
from .memory import InMemoryChannelLayer

if TYPE_CHECKING:
    from .redis import RedisChannelLayer

__all__ = [
    "AetherLayer",
    "InMemoryChannelLayer",
    "RedisChannelLayer",
    "is_aether_layer",
]


def __getattr__(name: str) -> Any:
    if name != "RedisChannelLayer":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from .redis import RedisChannelLayer
    except ModuleNotFoundError as exc:
        if exc.name != "redis" and not (exc.name or "").startswith("redis."):
            raise
        raise ImportError(
            "RedisChannelLayer needs redis-py: pip install 'aether_compat[redis]'"
        ) from exc
    return RedisChannelLayer
