"""Heartbeats of an `aether.v1` connection: ping a silent client, close one that
stays silent, so that a half-open connection (a laptop closed mid-session) leaves
its groups within `heartbeat_timeout` instead of whenever TCP notices.

Receiving a frame only records the time (`heard()`). No connection has a task or
a timer of its own: every heartbeat of an event loop waits in one heap, and one
timer of that loop (`_Wheel`) wakes for the earliest; a heartbeat whose client
spoke meanwhile is put back with its new time. Ten thousand idle connections cost
ten thousand heap entries, not ten thousand sleeping tasks.
"""

import asyncio
import heapq
import itertools
import time
import weakref
from collections.abc import Callable

from .limits import CLOSE_HEARTBEAT


class Heartbeat:
    """Pings after `interval` seconds of silence (again every `interval` while the
    silence lasts) and calls `shut(4001)` once it has lasted `timeout`. `ping` and
    `shut` are called from the loop's timer: they must not block (start a task for
    anything that waits)."""

    __slots__ = (
        "_clock",
        "_ping",
        "_shut",
        "heard_at",
        "interval",
        "pinged_at",
        "stopped",
        "timeout",
    )

    def __init__(
        self,
        interval: float,
        timeout: float,
        ping: Callable[[], object],
        shut: Callable[[int], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._ping = ping
        self._shut = shut
        self._clock = clock
        self.heard_at = self.pinged_at = clock()
        self.stopped = False

    def heard(self) -> None:
        """The client sent a frame: it is alive now."""
        self.heard_at = self._clock()

    def start(self) -> None:
        """Watch the connection from the running loop until `stop()` or a close."""
        _wheel().add(self, self.next_check(self._clock()))

    def stop(self) -> None:
        """The connection ended: its entry is dropped when its time comes."""
        self.stopped = True

    def next_check(self, now: float) -> float:
        """When something may be due: the next ping or the timeout."""
        next_ping = max(self.heard_at, self.pinged_at) + self.interval
        return min(next_ping, self.heard_at + self.timeout) if next_ping > now else now

    def check(self) -> float | None:
        """Ping or shut if due; the time of the next check (None: done)."""
        if self.stopped:
            return None
        now = self._clock()
        if now - self.heard_at >= self.timeout:
            self.stopped = True
            self._shut(CLOSE_HEARTBEAT)
            return None
        if now >= max(self.heard_at, self.pinged_at) + self.interval:
            self.pinged_at = now
            self._ping()
        return self.next_check(now)


class _Wheel:
    """The heartbeats of one event loop, by the time they are next checked."""

    __slots__ = ("_handle", "_heap", "_loop", "_order", "_wakes_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Heartbeat]] = []
        self._order = itertools.count()  # ties never compare heartbeats
        self._handle: asyncio.TimerHandle | None = None
        self._wakes_at = float("inf")

    def add(self, beat: Heartbeat, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), beat))
        self._arm(beat)

    def _arm(self, beat: Heartbeat) -> None:
        if not self._heap:
            return
        due = self._heap[0][0]
        if due >= self._wakes_at and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
        # Heartbeat clocks are monotonic like the loop's, but may be another one.
        at = self._loop.time() + max(0.0, due - beat._clock())
        self._wakes_at = due
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle, self._wakes_at = None, float("inf")
        heap = self._heap
        while heap:
            due, _, beat = heap[0]
            if beat.stopped:
                heapq.heappop(heap)
                continue
            if due > beat._clock():
                break
            heapq.heappop(heap)
            try:
                following = beat.check()
            except Exception as exc:
                beat.stopped = True
                self._loop.call_exception_handler(
                    {"message": "a heartbeat failed", "exception": exc}
                )
                continue
            if following is not None:
                heapq.heappush(heap, (following, next(self._order), beat))
        if heap:
            self._arm(heap[0][2])


_wheels: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wheel]" = (
    weakref.WeakKeyDictionary()
)


def _wheel() -> _Wheel:
    loop = asyncio.get_running_loop()
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _Wheel(loop)
    return wheel
