"""Management commands that use the Channels facade from the command line: what
they need to tell the user about reach, and how a layer failure becomes one line."""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from channels.layers import InMemoryChannelLayer as StockInMemoryChannelLayer

from ..errors import MemberUnreachable
from ..layers import InMemoryChannelLayer

_IN_PROCESS = (InMemoryChannelLayer, StockInMemoryChannelLayer)
_LAYER_LOGGER = "aether_compat.layers"


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


def layer_failure(group: str, errors: list[BaseException]) -> str | None:
    """Why the layer itself failed for `group` (Redis down), not one member: the
    layer reports that as a `MemberUnreachable` naming the group instead of a
    channel."""
    for error in errors:
        if isinstance(error, MemberUnreachable) and error.channel == group:
            return error.reason
    return None


@contextlib.contextmanager
def quiet_layer_logs(verbosity: int) -> Iterator[None]:
    """Below `--verbosity 2`, the layer's own warnings (one per failed Redis
    command) stay out of the way: the command reports the failure itself, in one
    line."""
    logger = logging.getLogger(_LAYER_LOGGER)
    if verbosity >= 2:
        yield
        return
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)
