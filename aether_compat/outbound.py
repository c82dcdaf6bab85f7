"""How far behind one WebSocket client is, per ASGI server, and the limit on it.

ASGI gives an application no way to see that a client stopped reading, and servers
differ in what they do about it:

- daphne's `send` returns at once and Twisted buffers whatever the socket does not
  take, without bound. The gauge finds the Twisted transport behind the `send`
  callable and reads its write buffer.
- uvicorn and hypercorn apply backpressure: `send` waits while the socket is full.
  Writes then go through `OutboundBuffer`, and the gauge reads the bytes queued
  there and how long the write in progress has been blocked.
- Any other server gets the buffer gauge too, which bounds a stalled client only if
  that server's `send` waits; the first connection logs a warning saying so.
"""

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from .outbound_buffer import OutboundBuffer

logger = logging.getLogger("aether_compat.consumers")

BACKPRESSURE_SERVERS = ("uvicorn", "hypercorn")
"""Top-level packages of servers known to make `send` wait for a slow client."""

_MAX_UNWRAP = 8
_announced: set[str] = set()


def _never() -> float | None:
    return None


class OutboundGauge:
    """Reads the bytes waiting for one connection (0 when it cannot tell) and since
    when its current write has been blocked (None: not blocked)."""

    __slots__ = ("_read", "kind", "stalled_since")

    def __init__(
        self,
        read: Callable[[], int] | None = None,
        stalled_since: Callable[[], float | None] = _never,
        kind: str = "custom",
    ) -> None:
        self._read = read
        self.stalled_since = stalled_since
        self.kind = kind

    @classmethod
    def for_send(
        cls, send: Callable[..., Any], buffer: OutboundBuffer
    ) -> "OutboundGauge":
        """The gauge for the server behind an ASGI `send` callable."""
        transport = _find_transport(send)
        if transport is not None and _has_write_buffer(transport):
            _announce("twisted", "daphne: bytes in Twisted's write buffer")
            return cls(functools.partial(_buffered_bytes, transport), kind="twisted")
        server = _server_of(send)
        if server in BACKPRESSURE_SERVERS:
            _announce(server, f"{server}: bytes queued behind a blocked send")
        else:
            _announce(
                server,
                f"{server!r} is neither daphne nor a server known to apply "
                "backpressure: a client that stops reading is bounded only if its "
                "send waits",
                logging.WARNING,
            )
        return cls(lambda: buffer.queued_bytes, lambda: buffer.blocked_since, "buffer")

    @property
    def measures(self) -> bool:
        """Whether this gauge can see the connection's backlog at all."""
        return self._read is not None

    def backlog(self) -> int:
        """Bytes given to the connection that the socket has not taken yet."""
        if self._read is None:
            return 0
        try:
            return self._read()
        except (AttributeError, TypeError):
            return 0

    def behind(self, limit_bytes: int) -> bool:
        """Whether the client has still not caught up: more than `limit_bytes`
        waiting, or (buffer gauge, which never holds more) a write still blocked."""
        if self.kind == "buffer":
            return self.stalled_since() is not None
        return self.backlog() > limit_bytes


class OutboundLimit:
    """Applies `limit_bytes` and `grace_seconds` to a gauge: `admit(size)` is None
    when a frame of `size` bytes may be given to the connection, else the backlog
    that refuses it; `overdue()` says whether the client should be closed: refused
    ever since a first refusal, or blocked, for longer than the grace period.
    `recheck()` reads the gauge again when no frame comes to do it."""

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

    def admit(self, size: int = 0) -> int | None:
        backlog = self.gauge.backlog()
        if backlog + size <= self.limit_bytes:
            self._behind_since = None
            return None
        if self._behind_since is None:
            self._behind_since = self._clock()
        return backlog

    def recheck(self) -> None:
        if self._behind_since is not None and not self.gauge.behind(self.limit_bytes):
            self._behind_since = None

    def due_in(self) -> float | None:
        """Seconds until the client is overdue if nothing changes (None: it is
        neither beyond the limit nor blocked)."""
        starts = [
            since
            for since in (self._behind_since, self.gauge.stalled_since())
            if since is not None
        ]
        if not starts:
            return None
        return min(starts) + self.grace_seconds - self._clock()

    def overdue(self) -> bool:
        due = self.due_in()
        return due is not None and due <= 0


def _announce(server: str, gauge: str, level: int = logging.INFO) -> None:
    """Say once per process and server which outbound gauge is in use."""
    if server not in _announced:
        _announced.add(server)
        logger.log(level, "outbound limit gauge: %s", gauge)


def _unwrap(send: Any) -> Any:
    """Follow the wrappers Channels' middleware puts around `send` (bound methods
    keeping `real_send`) to the server's own callable."""
    for _ in range(_MAX_UNWRAP):
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "real_send", None) if owner is not None else None
        if inner is None:
            return send
        send = inner
    return send


def _find_transport(send: Any) -> Any:
    """daphne's `send` is `partial(server.handle_reply, protocol)`."""
    send = _unwrap(send)
    for _ in range(_MAX_UNWRAP):
        if not isinstance(send, functools.partial):
            return None
        for arg in send.args:
            transport = getattr(arg, "transport", None)
            if transport is not None:
                return transport
        send = _unwrap(send.func)
    return None


def _server_of(send: Any) -> str:
    """The top-level package that defined the server's `send`."""
    send = _unwrap(send)
    while isinstance(send, functools.partial):
        send = send.func
    module = getattr(send, "__module__", None)
    owner = getattr(send, "__self__", None)
    if module in (None, "builtins") and owner is not None:
        module = type(owner).__module__  # a method of a compiled class (granian)
    return (module or type(send).__module__).split(".", 1)[0]


def _has_write_buffer(transport: Any) -> bool:
    return all(
        hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")
    )


def _buffered_bytes(transport: Any) -> int:
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
