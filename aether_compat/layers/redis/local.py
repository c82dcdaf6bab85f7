"""The in-process half of a Redis layer's own channels: messages its pump took from
the inbox wait here, per channel, until `receive()` takes them or they expire.

They still count against the channel's capacity in Redis until then: every message
taken or expired here becomes an "ack" that lowers the count, so senders in other
processes see exactly how many messages a channel holds.
"""

import asyncio
import heapq
import itertools
from collections import deque

from ..wakeup import running_loop, wake_one


class LocalChannels:
    """Buffers and waiting receivers of this process's channels (any event loop)."""

    def __init__(self) -> None:
        self._buffers: dict[str, deque[tuple[int, bytes, str]]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._deadlines: list[tuple[int, int, tuple[str, ...]]] = []
        self._order = itertools.count()
        self.acks: dict[str, int] = {}

    def put(
        self, deadline: int, targets: list[tuple[str, str]], payload: bytes
    ) -> None:
        """Buffer one stored item for each (channel, token) and wake their readers."""
        running = running_loop()
        buffers, waiting = self._buffers, self._waiters
        item_of = (deadline, payload)
        for name, token in targets:
            buffer = buffers.get(name)
            if buffer is None:
                buffer = buffers[name] = deque()
            buffer.append((*item_of, token))
            if name in waiting:
                wake_one(waiting[name], running)
        names = tuple(name for name, _ in targets)
        heapq.heappush(self._deadlines, (deadline, next(self._order), names))

    def take(self, name: str, now: int) -> bytes | None:
        """The oldest unexpired message of `name`, or None; acks what it removes."""
        buffer = self._buffers.get(name)
        while buffer:
            deadline, payload, token = buffer.popleft()
            self.ack(token)
            if not buffer:
                del self._buffers[name]
            if deadline >= now:
                return payload
        return None

    def ack(self, token: str, count: int = 1) -> None:
        self.acks[token] = self.acks.get(token, 0) + count

    def drain_acks(self) -> dict[str, int]:
        acks, self.acks = self.acks, {}
        return acks

    def next_deadline(self) -> int | None:
        return self._deadlines[0][0] if self._deadlines else None

    def sweep(self, now: int) -> set[str]:
        """Drop expired messages; the channels that let one expire with no reader."""
        unread: set[str] = set()
        while self._deadlines and self._deadlines[0][0] < now:
            _, _, names = heapq.heappop(self._deadlines)
            for name in names:
                if self._drop_expired(name, now) and not self._waiters.get(name):
                    unread.add(name)
        return unread

    def _drop_expired(self, name: str, now: int) -> bool:
        buffer = self._buffers.get(name)
        dropped = False
        while buffer and buffer[0][0] < now:
            self.ack(buffer.popleft()[2])
            dropped = True
        if buffer is not None and not buffer:
            del self._buffers[name]
        return dropped

    def has_messages(self, name: str) -> bool:
        return bool(self._buffers.get(name))

    def count(self, name: str) -> int:
        return len(self._buffers.get(name, ()))

    def clear(self) -> None:
        """Forget every buffered message (flush); their counts went with the keys."""
        self._buffers.clear()
        self._deadlines.clear()
        self.acks.clear()

    async def wait(self, name: str) -> None:
        """Wait until a message for `name` may be there (or the pump stopped)."""
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(name)
        if waiters is None:
            waiters = self._waiters[name] = []
        waiters.append(waiter)
        if name in self._buffers:  # put by a pump on another thread just now
            wake_one(waiters, running_loop())
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and self.has_messages(name):
                wake_one(waiters, running_loop())  # the wake-up was ours: pass it on
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._waiters.get(name) is waiters:
                del self._waiters[name]

    def wake_all(self) -> None:
        """Wake every reader (the pump stopped: one of them must restart it)."""
        running = running_loop()
        for waiters in list(self._waiters.values()):
            while waiters:
                wake_one(waiters, running)
