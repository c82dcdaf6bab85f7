"""The in-memory layer's table of live channels: opening one, forgetting idle ones
(so a long-running server holds only channels in use), and what a cancelled
reader leaves behind (its waiter, or a message it was handed and never took).

Every method runs under the layer's lock (the caller holds it). The layer reads
`channels` directly on its hot paths.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..sessions import SessionTable
from .memory_queue import Channel, Item
from .wakeup import running_loop, wake_one

IDLE_BATCH = 1024  # idle channels kept at most before they are forgotten


class ChannelTable:
    """Channel name -> its `Channel`, for names with messages, readers, groups
    or a session."""

    __slots__ = ("_capacity_of", "_maybe_idle", "_sessions", "channels")

    def __init__(
        self, capacity_of: Callable[[str], int], sessions: SessionTable
    ) -> None:
        self.channels: dict[str, Channel] = {}
        self._capacity_of = capacity_of
        self._sessions = sessions
        self._maybe_idle: set[str] = set()

    def open(self, name: str) -> Channel:
        ch = self.channels[name] = Channel(self._capacity_of(name))
        return ch

    def retire_later(self, name: str) -> None:
        """Note a channel that a reader just emptied. Most readers come straight back,
        so idle channels are forgotten in batches rather than on every message."""
        idle = self._maybe_idle
        idle.add(name)
        if len(idle) > IDLE_BATCH:
            self._maybe_idle = set()
            for candidate in idle:
                ch = self.channels.get(candidate)
                if ch is not None:
                    self.close_if_idle(candidate, ch)

    def close_if_idle(self, name: str, ch: Channel) -> None:
        """Forget an idle channel, so a server's table holds only live channels."""
        if ch.messages or ch.waiters or ch.groups or self._sessions.get(name):
            return
        if self.channels.get(name) is ch:
            del self.channels[name]

    def forget_messages(self) -> None:
        """Drop every message and membership mark; readers waiting keep waiting."""
        for ch in self.channels.values():
            ch.messages = None
            ch.groups = None
        self._maybe_idle = set()
        for name, ch in list(self.channels.items()):
            self.close_if_idle(name, ch)

    def abandon(self, name: str, ch: Channel, waiter: asyncio.Future[Any]) -> None:
        """A receiver was cancelled: forget it, put back a message it was handed,
        and pass on a wake-up it was given. It read until now (its waiter showed
        it), so its reading time is now."""
        ch.read_at = now = time.monotonic()
        waiters = ch.waiters or []
        if waiter in waiters:
            waiters.remove(waiter)
        elif waiter.done() and not waiter.cancelled():
            if (handed := waiter.result()) is not None:
                ch = self._put_back(name, handed, now)
            if ch.messages and ch.waiters:
                wake_one(ch.waiters, running_loop())
        self.close_if_idle(name, ch)

    def _put_back(self, name: str, item: Item, now: float) -> Channel:
        """Return a handed item, not yet taken, to the front of its channel: it is
        older than anything queued since. The channel may have been forgotten
        meanwhile (idle, with no reader waiting), hence the lookup. Senders saw
        its queue without it, so it may stand one over capacity until read."""
        ch = self.channels.get(name) or self.open(name)
        ch.read_at = now
        if item[0] >= now:  # an expired one is dropped, as a reader would
            if ch.messages is None:
                ch.messages = deque()
            ch.messages.appendleft(item)
        return ch
