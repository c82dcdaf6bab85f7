"""Heartbeats of an `aether.v1` connection: ping a silent client, close one that
stays silent, so that a half-open connection (a laptop closed mid-session) leaves
its groups within `heartbeat_timeout` instead of whenever TCP notices.

Receiving a frame only records the time (`heard()`); one task per connection
computes when it next has something to do and sleeps until then.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from .limits import CLOSE_HEARTBEAT


class Heartbeat:
    """Pings after `interval` seconds of silence (again every `interval` while the
    silence lasts) and calls `shut(4001)` once it has lasted `timeout`."""

    __slots__ = ("_clock", "_ping", "_shut", "heard_at", "interval", "timeout")

    def __init__(
        self,
        interval: float,
        timeout: float,
        ping: Callable[[], Awaitable[None]],
        shut: Callable[[int], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._ping = ping
        self._shut = shut
        self._clock = clock
        self.heard_at = clock()

    def heard(self) -> None:
        """The client sent a frame: it is alive now."""
        self.heard_at = self._clock()

    async def run(self) -> None:
        """Watch the connection until it is closed for silence (or cancelled)."""
        pinged_at = self.heard_at
        while True:
            now = self._clock()
            heard_at = self.heard_at
            if now - heard_at >= self.timeout:
                await self._shut(CLOSE_HEARTBEAT)
                return
            next_ping = max(heard_at, pinged_at) + self.interval
            if now >= next_ping:
                pinged_at = now
                await self._ping()
                continue
            await asyncio.sleep(min(next_ping, heard_at + self.timeout) - now)
