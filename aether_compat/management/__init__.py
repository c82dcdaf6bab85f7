"""Management commands that use the Channels facade from the command line, and what
they need to tell the user about reach."""

from typing import Any

from channels.layers import InMemoryChannelLayer as StockInMemoryChannelLayer

from ..layers import InMemoryChannelLayer

_IN_PROCESS = (InMemoryChannelLayer, StockInMemoryChannelLayer)


def reach_note(layer: Any) -> str | None:
    """A warning when `layer` lives inside this process: a command then reaches only
    its own (empty) process, never the clients of a running server."""
    if not isinstance(layer, _IN_PROCESS):
        return None
    kind = f"{type(layer).__module__}.{type(layer).__qualname__}"
    return (
        f"Note: the channel layer is {kind}, which lives inside one process. This "
        "command runs in its own process, so it reaches only members in it, never the "
        "clients of a running server. Configure a shared layer (Redis) in "
        "CHANNEL_LAYERS to reach them."
    )
