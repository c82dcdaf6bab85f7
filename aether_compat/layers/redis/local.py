"""The in-process half of a Redis layer's own channels: messages its pump took from
the inbox wait here, per channel, until `receive()` takes them or they expire.

They still count against the channel's capacity in Redis until then: every message
taken or expired here becomes an "ack" that lowers the count, so senders in other
processes see exactly how many messages a channel holds. The pump and the readers
may run on different threads: the tables change under one lock, never held across
an await.
"""

import asyncio
import heapq
import itertools
import threading
from collections import deque

from ..wakeup import running_loop, wake_one

_READERS_KEPT = 100_000  # read times remembered at most (a forgotten one: "never")


class LocalChannels:
    """Buffers and waiting receivers of this process's channels (any event loop)."""

    def __init__(self) -> None:
        self._buffers: dict[str, deque[tuple[int, bytes, str | None]]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._deadlines: list[tuple[int, int, tuple[str, ...]]] = []
        self._read_at: dict[str, int] = {}
        self._order = itertools.count()
        # Hot paths call acquire()/release() themselves: `with` costs twice as much.
        self._lock = threading.Lock()
        self.acks: dict[str, int] = {}

    def put(
        self,
        deadline: int,
        targets: list[tuple[str, str]],
        payload: bytes,
        counted: bool = True,
    ) -> None:
        """Buffer one stored item for each (channel, token) and wake their readers.
        An item not `counted` in Redis (a gap filled from history) acks nothing."""
        running = running_loop()
        item_of = (deadline, payload)
        names = tuple(name for name, _ in targets)
        self._lock.acquire()
        try:
            buffers, waiting = self._buffers, self._waiters
            for name, token in targets:
                buffer = buffers.get(name)
                if buffer is None:
                    buffer = buffers[name] = deque()
                buffer.append((*item_of, token if counted else None))
                if name in waiting:
                    wake_one(waiting[name], running)
            heapq.heappush(self._deadlines, (deadline, next(self._order), names))
        finally:
            self._lock.release()

    def take(self, name: str, now: int) -> bytes | None:
        """The oldest unexpired message of `name`, or None; acks what it removes."""
        self._lock.acquire()
        try:
            read_at = self._read_at
            if name not in read_at and len(read_at) >= _READERS_KEPT:
                read_at.clear()
            read_at[name] = now
            buffer = self._buffers.get(name)
            while buffer:
                deadline, payload, token = buffer.popleft()
                if token is not None:
                    self._ack(token, 1)
                if not buffer:
                    del self._buffers[name]
                if deadline >= now:
                    return payload
            return None
        finally:
            self._lock.release()

    def ack(self, token: str, count: int = 1) -> None:
        with self._lock:
            self._ack(token, count)

    def ack_all(self, tokens: list[str]) -> None:
        """One taken or dropped message for each token (one lock for them all)."""
        if tokens:
            self._lock.acquire()
            try:
                for token in tokens:
                    self._ack(token, 1)
            finally:
                self._lock.release()

    def drain_acks(self) -> dict[str, int]:
        self._lock.acquire()
        try:
            acks, self.acks = self.acks, {}
        finally:
            self._lock.release()
        return acks

    def next_deadline(self) -> int | None:
        deadlines = self._deadlines
        return deadlines[0][0] if deadlines else None

    def sweep(self, now: int, idle_ms: int) -> set[str]:
        """Drop expired messages; return the channels whose reader stopped: none
        waits, and none asked for `idle_ms`. A channel never read yet is not among
        them (its consumer may not have started), nor is a slow but live reader."""
        stopped: set[str] = set()
        with self._lock:
            while self._deadlines and self._deadlines[0][0] < now:
                _, _, names = heapq.heappop(self._deadlines)
                for name in names:
                    if self._drop_expired(name, now) and self._reader_gone(
                        name, now, idle_ms
                    ):
                        stopped.add(name)
        return stopped

    def readers_since(self, since_ms: int) -> set[str]:
        """Channels waited on now, or read since `since_ms`: the ones in use."""
        with self._lock:
            recent = {name for name, at in self._read_at.items() if at >= since_ms}
            return recent | self._waiters.keys()

    def has_messages(self, name: str) -> bool:
        return bool(self._buffers.get(name))

    def may_look_full(self, name: str, token: str, capacity: int) -> bool:
        """Whether senders may find `name` full until its next message's ack lands:
        what it buffers, plus acks not yet sent, reaches its capacity."""
        buffer = self._buffers.get(name)
        return bool(buffer) and len(buffer) + self.acks.get(token, 0) >= capacity

    def clear(self) -> None:
        """Forget every buffered message (flush); their counts went with the keys."""
        with self._lock:
            self._buffers.clear()
            self._deadlines.clear()
            self.acks.clear()

    async def wait(self, name: str) -> None:
        """Wait until a message for `name` may be there (or the pump stopped)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._lock.acquire()
        try:
            waiters = self._waiters.get(name)
            if waiters is None:
                waiters = self._waiters[name] = []
            waiters.append(waiter)
            if name in self._buffers:  # put by a pump on another thread just now
                wake_one(waiters, loop)
        finally:
            self._lock.release()
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                if waiter.done() and not waiter.cancelled() and name in self._buffers:
                    wake_one(waiters, loop)  # the wake-up was ours: pass it on
            raise
        finally:
            self._lock.acquire()
            try:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters and self._waiters.get(name) is waiters:
                    del self._waiters[name]
            finally:
                self._lock.release()

    def wake_all(self) -> None:
        """Wake every reader (the pump stopped: one of them must restart it)."""
        running = running_loop()
        with self._lock:
            for waiters in list(self._waiters.values()):
                while waiters:
                    wake_one(waiters, running)

    # Internals, called with the lock held

    def _ack(self, token: str, count: int) -> None:
        self.acks[token] = self.acks.get(token, 0) + count

    def _reader_gone(self, name: str, now: int, idle_ms: int) -> bool:
        read_at = self._read_at.get(name)
        if self._waiters.get(name) or read_at is None or now - read_at <= idle_ms:
            return False
        del self._read_at[name]
        return True

    def _drop_expired(self, name: str, now: int) -> bool:
        buffer = self._buffers.get(name)
        dropped = False
        while buffer and buffer[0][0] < now:
            token = buffer.popleft()[2]
            if token is not None:
                self._ack(token, 1)
            dropped = True
        if buffer is not None and not buffer:
            del self._buffers[name]
        return dropped
