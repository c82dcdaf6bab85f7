"""The in-process half of a Redis layer's own channels: messages its pump took from
the inbox wait here, per channel, until `receive()` takes them or they expire.

They still count against the channel's capacity in Redis until then: every message
taken or expired here becomes an "ack" that lowers the count, so senders in other
processes see exactly how many messages a channel holds. The pump and the readers
may run on different threads: the tables change under one lock, never held across
an await.

A reader parked on the pump's own event loop is handed its message directly (no
buffer, no second look): `wait()` returns the item, and the reader acks it with
`taken()`. A reader cancelled before it ran puts the item back at the head of
its buffer, so nothing is lost and the order holds.

An "open" item (`OpenItem`) is a group message Redis stored without raising each
member's count, because none could be full; Redis counts it for all of them until
this process settles it ("*<id>" among the acks). A member whose copy goes into a
buffer instead of to a waiting reader gets its count raised (a negative ack), and
the item is settled once every reader it was handed to took it or put it back.

A message for several readers may come with its decoded dict, `shared`, when every
value of it is immutable (`memory_queue.shareable`): each reader then returns a
shallow copy of its own instead of decoding the payload again.
"""

import asyncio
import heapq
import itertools
import threading
from asyncio import Future
from collections import deque
from typing import Any

from .. import codec
from ..wakeup import running_loop, wake_one

_READERS_KEPT = 100_000  # read times remembered at most (a forgotten one: "never")


class OpenItem:
    """The readers an open item was handed to that have not taken it yet."""

    __slots__ = ("key", "settled", "waiting")

    def __init__(self, item_id: str) -> None:
        self.key = "*" + item_id  # how the acks name it
        self.waiting: set[str] = set()
        self.settled = False


# (deadline ms, payload, token or None, open item or None, shared message or None):
# one stored message of one channel. A buffered entry is always counted in Redis:
# its token is acked when it is taken or dropped (None: nothing to ack, a gap filled
# from history). The shared message, when there is one, is never handed out as
# is: readers copy it (see `message_of`).
Item = tuple[int, bytes, str | None, OpenItem | None, dict[str, Any] | None]


class LocalChannels:
    """Buffers and waiting receivers of this process's channels (any event loop)."""

    def __init__(self) -> None:
        self._buffers: dict[str, deque[Item]] = {}
        self._waiters: dict[str, list[asyncio.Future[Item | None]]] = {}
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
        opened: OpenItem | None = None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        """Hand one stored item to each (channel, token): to a reader parked on this
        loop when its buffer is empty, else into its buffer, waking a reader. An item
        not `counted` in Redis (a gap filled from history) acks nothing; an `opened`
        one raises the count of each token it buffers. `shared`: the payload decoded,
        for readers to copy (only when every value of it is immutable)."""
        running = running_loop()
        buffered = []
        self._lock.acquire()
        try:
            buffers, waiting, acks = self._buffers, self._waiters, self.acks
            for name, token in targets:
                waiters = waiting.get(name)
                if (  # one reader parked on this loop, none buffered: the usual case
                    waiters is not None
                    and len(waiters) == 1
                    and name not in buffers
                    and (waiter := waiters[0]).get_loop() is running
                    and not waiter.done()
                ):
                    del waiting[name]
                    waiter.set_result(
                        (deadline, payload, token if counted else None, opened, shared)
                    )
                    if opened is not None:
                        opened.waiting.add(token)
                    continue
                buffer = buffers.get(name)
                if buffer is None:
                    if waiters:  # several readers, or one on another loop
                        handed = (
                            deadline,
                            payload,
                            token if counted else None,
                            opened,
                            shared,
                        )
                        if _hand(waiters, handed, running):
                            if opened is not None:
                                opened.waiting.add(token)
                            if not waiters:
                                del waiting[name]
                            continue
                    buffer = buffers[name] = deque()
                if opened is not None:
                    acks[token] = acks.get(token, 0) - 1
                buffer.append(
                    (deadline, payload, token if counted else None, None, shared)
                )
                buffered.append(name)
                if waiters:
                    wake_one(waiters, running)
                if waiters is not None and not waiters:
                    del waiting[name]
            if buffered:
                entry = (deadline, next(self._order), tuple(buffered))
                heapq.heappush(self._deadlines, entry)
            if opened is not None and not opened.waiting:
                self._settle(opened)
        finally:
            self._lock.release()

    def take(self, name: str, now: int) -> bytes | None:
        """The oldest unexpired message of `name`, or None; acks what it removes."""
        item = self.take_item(name, now)
        return None if item is None else item[1]

    def take_item(self, name: str, now: int) -> Item | None:
        """As `take`, the whole item (`message_of` makes its message)."""
        self._lock.acquire()
        try:
            self._read(name, now)
            buffer = self._buffers.get(name)
            while buffer:
                item = buffer.popleft()
                if item[2] is not None:
                    self._ack(item[2], 1)
                if not buffer:
                    del self._buffers[name]
                if item[0] >= now:
                    return item
            return None
        finally:
            self._lock.release()

    def taken(self, name: str, item: Item, now: int) -> bytes | None:
        """Ack an item `wait()` handed over; its payload, or None if it expired."""
        deadline, payload, token, opened, _ = item
        self._lock.acquire()
        try:
            read_at = self._read_at  # as `_read`, inline: once per delivery
            if name not in read_at and len(read_at) >= _READERS_KEPT:
                read_at.clear()
            read_at[name] = now
            if opened is not None and not opened.settled:
                opened.waiting.discard(token)
                if not opened.waiting:
                    self._settle(opened)
            elif token is not None:
                self._ack(token, 1)
        finally:
            self._lock.release()
        return payload if deadline >= now else None

    def put_back(self, name: str, item: Item) -> None:
        """Return a handed-over item that its reader could not take (cancelled) to
        the head of its buffer, counted, and wake the next reader."""
        deadline, payload, token, opened, shared = item
        with self._lock:
            if opened is not None and not opened.settled and token is not None:
                opened.waiting.discard(token)
                self._ack(token, -1)  # counted from now on, as buffered
                if not opened.waiting:
                    self._settle(opened)
            buffer = self._buffers.get(name)
            if buffer is None:
                buffer = self._buffers[name] = deque()
            buffer.appendleft((deadline, payload, token, None, shared))
            entry = (deadline, next(self._order), (name,))
            heapq.heappush(self._deadlines, entry)
            waiters = self._waiters.get(name)
            if waiters:
                wake_one(waiters, running_loop())
                if not waiters:
                    del self._waiters[name]

    def settle_now(self, opened: OpenItem) -> None:
        """Settle an open item before all its readers took it: those still waiting
        have their counts raised, as if buffered (their takes ack them)."""
        with self._lock:
            if not opened.settled:
                for token in opened.waiting:
                    self._ack(token, -1)
                opened.waiting.clear()
                self._settle(opened)

    def count_open(self, tokens: list[str], item_id: str) -> None:
        """Settle an open item at once, raising the count of each of its tokens
        (their takes, drops and acks then go as for any counted message)."""
        self._lock.acquire()
        try:
            for token in tokens:
                self._ack(token, -1)
            self._ack("*" + item_id, 1)
        finally:
            self._lock.release()

    def settled_open(self, item_id: str) -> None:
        """An open item none of whose tokens reached a reader (it had expired)."""
        self.ack("*" + item_id)

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
        owed = max(0, self.acks.get(token, 0))  # a raised count is not owed
        return bool(buffer) and len(buffer) + owed >= capacity

    def clear(self) -> None:
        """Forget every buffered message (flush); their counts went with the keys."""
        with self._lock:
            self._buffers.clear()
            self._deadlines.clear()
            self.acks.clear()

    async def wait(self, name: str) -> Item | None:
        """Wait until a message for `name` is handed over (returned: ack it with
        `taken()`), may be in the buffer, or the pump stopped (None)."""
        waiter = self.park(name)
        try:
            return await waiter
        except asyncio.CancelledError:
            self.unpark(name, waiter)
            raise

    def park(
        self, name: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> "asyncio.Future[Item | None]":
        """A future that `wait()` awaits (callers on a hot path await it
        themselves, one coroutine less, and pass the running `loop`); a cancelled
        one must be `unpark`ed."""
        if loop is None:
            loop = asyncio.get_running_loop()
        waiter = Future(loop=loop)  # as loop.create_future(), one call less
        self._lock.acquire()
        try:
            waiters = self._waiters.get(name)
            if waiters is None:
                waiters = self._waiters[name] = []
            waiters.append(waiter)
            if name in self._buffers:  # put by a pump on another thread just now
                wake_one(waiters, loop)
                if not waiters:
                    del self._waiters[name]
        finally:
            self._lock.release()
        return waiter  # whoever resolves it takes it out of `waiters`

    def park_empty(
        self, name: str, loop: asyncio.AbstractEventLoop
    ) -> "asyncio.Future[Item | None] | None":
        """As `park` on the running `loop`, unless something is buffered for `name`
        (None: take it first)."""
        if self._buffers.get(name):
            return None
        return self.park(name, loop)

    def unpark(self, name: str, waiter: "asyncio.Future[Item | None]") -> None:
        """After a cancelled wait: forget the waiter, or put back what it was
        handed, or pass its wake-up on, so that nothing is lost."""
        if waiter.cancelled():
            self._forget(name, waiter)
        elif (item := waiter.result()) is not None:
            self.put_back(name, item)
        else:
            with self._lock:
                waiters = self._waiters.get(name)
                if waiters and name in self._buffers:  # pass the wake-up on
                    wake_one(waiters, waiter.get_loop())
                    if not waiters:
                        del self._waiters[name]

    def _forget(self, name: str, waiter: "asyncio.Future[Item | None]") -> None:
        with self._lock:
            waiters = self._waiters.get(name)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[name]

    def wake_all(self) -> None:
        """Wake every reader (the pump stopped: one of them must restart it)."""
        running = running_loop()
        with self._lock:
            for waiters in list(self._waiters.values()):
                while waiters:
                    wake_one(waiters, running)
            self._waiters.clear()

    # Internals, called with the lock held

    def _read(self, name: str, now: int) -> None:
        """Note that `name`'s reader asked at `now` (see `sweep`)."""
        read_at = self._read_at
        if name not in read_at and len(read_at) >= _READERS_KEPT:
            read_at.clear()
        read_at[name] = now

    def _ack(self, token: str, count: int) -> None:
        self.acks[token] = self.acks.get(token, 0) + count

    def _settle(self, opened: OpenItem) -> None:
        opened.settled = True
        self.acks[opened.key] = 1

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


def _hand(
    waiters: "list[asyncio.Future[Item | None]]",
    item: Item,
    running: asyncio.AbstractEventLoop | None,
) -> bool:
    """Give `item` to the first live waiter if it runs on this loop (another loop's
    waiter is woken the usual way, to look in the buffer)."""
    while waiters:
        waiter = waiters[0]
        if waiter.done():
            waiters.pop(0)
        elif waiter.get_loop() is running:
            waiters.pop(0)
            waiter.set_result(item)
            return True
        else:
            return False
    return False


def message_of(item: Item) -> dict[str, Any]:
    """The message of a taken item for its reader: a copy of its own of the shared
    one (every value immutable: no reader can change what another gets), or the
    payload decoded afresh."""
    shared = item[4]
    return codec.decode(item[1]) if shared is None else shared.copy()
