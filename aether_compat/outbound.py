"""How many bytes sent to one WebSocket client are still waiting inside the server.

ASGI gives an application no way to see that a client stopped reading: daphne's
`send` returns at once and Twisted buffers whatever does not fit in the socket,
without bound. `OutboundGauge` finds the Twisted transport behind the `send`
callable that daphne handed to the consumer and reads its write buffer, so that
`AetherConsumer` can refuse deliveries (counted as failures) and close a client
that has fallen too far behind. Under any other server the gauge reads 0, and the
outbound limit is not enforced (servers that apply backpressure make `send` wait).
"""

import functools
import time
from collections.abc import Callable
from typing import Any

_MAX_UNWRAP = 8


class OutboundGauge:
    """Reads the bytes buffered for one connection; 0 when it cannot tell."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], int] | None = None) -> None:
        self._read = read

    @classmethod
    def for_send(cls, send: Callable[..., Any]) -> "OutboundGauge":
        """A gauge for the connection behind an ASGI `send` callable."""
        transport = _find_transport(send)
        if transport is None or not _has_write_buffer(transport):
            return cls()
        return cls(functools.partial(_buffered_bytes, transport))

    @property
    def measures(self) -> bool:
        """Whether this gauge can see the connection's buffer at all."""
        return self._read is not None

    def backlog(self) -> int:
        """Bytes written to the connection that the socket has not taken yet."""
        if self._read is None:
            return 0
        try:
            return self._read()
        except (AttributeError, TypeError):
            return 0


class OutboundLimit:
    """Applies `limit_bytes` to a gauge: `over()` is the backlog when the client is
    beyond the limit (else `None`), and `overdue()` says whether it has stayed
    beyond it for more than `grace_seconds`, by when it should be closed."""

    __slots__ = ("_behind_since", "_clock", "gauge", "grace_seconds", "limit_bytes")

    def __init__(
        self,
        gauge: OutboundGauge,
        limit_bytes: int,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gauge = gauge
        self.limit_bytes = limit_bytes
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._behind_since: float | None = None

    def over(self) -> int | None:
        backlog = self.gauge.backlog()
        if backlog <= self.limit_bytes:
            self._behind_since = None
            return None
        if self._behind_since is None:
            self._behind_since = self._clock()
        return backlog

    def overdue(self) -> bool:
        since = self._behind_since
        return since is not None and self._clock() - since > self.grace_seconds


def _find_transport(send: Any) -> Any:
    """Follow daphne's `partial(server.handle_reply, protocol)` through the wrappers
    Channels' middleware puts around it (bound methods keeping `real_send`)."""
    for _ in range(_MAX_UNWRAP):
        if isinstance(send, functools.partial):
            for arg in send.args:
                transport = getattr(arg, "transport", None)
                if transport is not None:
                    return transport
            send = send.func
            continue
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "real_send", None) if owner is not None else None
        if inner is None:
            return None
        send = inner
    return None


def _has_write_buffer(transport: Any) -> bool:
    return all(
        hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")
    )


def _buffered_bytes(transport: Any) -> int:
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
