"""The backends, named for `settings.CHANNEL_LAYERS`: `aether_compat.layers.` +
`InMemoryChannelLayer` or `RedisChannelLayer`."""

from .base import AetherLayer, is_aether_layer
from .memory import InMemoryChannelLayer
from .redis import RedisChannelLayer

__all__ = [
    "AetherLayer",
    "InMemoryChannelLayer",
    "RedisChannelLayer",
    "is_aether_layer",
]
