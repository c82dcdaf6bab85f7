"""InMemoryChannelLayer: queues, groups, expiry and presence for one process.

Every operation touches only the channels it names (a group_send costs O(members)),
messages are encoded once with msgpack (the Redis wire format) and each receiver
gets a dict of its own (memory_queue.py says how a group_send shares one decode),
and a cancelled `receive()` never takes a message with it. Any thread and
loop may call it: the tables are changed under one lock, never held across an
await. The hot paths are kept flat on purpose (bench/memory_bench.py measures
them): a name already in the tables skips the rule check it passed on its way in,
and a group_send puts one shared item on every member: in the hands of a receiver
parked on the sender's loop, else in its queue.
"""

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..errors import ChannelFull
from ..history import History, check_limit, check_since
from ..presence import Presence, PresenceStats, check_meta
from ..results import SendResult
from . import codec
from .base import AetherLayer
from .memory_channels import ChannelTable
from .memory_history import MemoryHistory, decoded, strip_position
from .memory_presence import MemoryPresence
from .memory_queue import (
    Channel,
    Item,
    deliver,
    drop_expired,
    hand_over,
    shareable,
)
from .wakeup import running_loop, wake_one

logger = logging.getLogger(__name__)
_NO_MEMBERS = SendResult()


class InMemoryChannelLayer(AetherLayer):
    """A channel layer for one process: select it in `settings.CHANNEL_LAYERS`."""

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        delivery_timeout: float = 2.0,
        group_options: dict[Any, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            expiry,
            group_expiry,
            capacity,
            channel_capacity,
            delivery_timeout,
            group_options,
        )
        # Hot paths call acquire()/release() themselves: `with` costs twice as much.
        self._lock = threading.Lock()
        self._table = ChannelTable(self._capacity_of, self.sessions)
        self._channels = self._table.channels
        self._groups: dict[str, dict[str, float]] = {}
        self._client = secrets.token_hex(6)
        self._counter = itertools.count(1)
        # None when no group has options: a group_send then asks nothing more.
        self._history = MemoryHistory() if self.group_options else None
        self._presence = MemoryPresence(
            self._lock,
            self.group_options,
            self._send_diff,
            self._sweep,
            min(expiry, group_expiry) / 4,
        )

    # Channels API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` on `channel`; raise `ChannelFull` when it is at capacity."""
        if type(channel) is not str or channel not in self._channels:
            self.require_valid_channel_name(channel)
        payload = codec.encode(message)
        if (session := self.sessions.get(channel)) is not None:
            return await self.sessions.send(session, payload)
        now = time.monotonic()
        self._lock.acquire()
        try:
            ch = self._channels.get(channel) or self._table.open(channel)
            messages = ch.messages
            if messages is None:
                messages = ch.messages = deque()
            stopped = False
            if len(messages) >= ch.capacity:
                stopped = drop_expired(ch, now, self.expiry)
            if len(messages) >= ch.capacity:
                raise ChannelFull(channel, ch.capacity)
            item = (now + self.expiry, payload, None)
            waiters = ch.waiters
            if not waiters:  # no loop lookup then: it costs a system call
                messages.append(item)
            elif hand_over(ch, item, running := running_loop(), now):
                if not (ch.waiters or ch.groups):
                    self._table.retire_later(channel)  # as its reader would
            else:
                messages.append(item)
                wake_one(waiters, running)
            if stopped:
                self._leave_all(channel, ch)
        finally:
            self._lock.release()

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for the next message on `channel`; safe to cancel at any point."""
        while True:
            self._lock.acquire()
            try:
                ch = self._channels.get(channel) if type(channel) is str else None
                if ch is None:
                    self.require_valid_channel_name(channel)
                    ch = self._table.open(channel)
                messages = ch.messages
                if messages:
                    # A reader that waits needs no time stamp: its waiter shows it.
                    ch.read_at = now = time.monotonic()
                    if messages[0][0] < now:
                        drop_expired(ch, now, self.expiry)
                    if messages:
                        item = messages.popleft()
                        if not (messages or ch.waiters or ch.groups):
                            self._table.retire_later(channel)
                        break
                waiter = asyncio.get_running_loop().create_future()
                if ch.waiters is None:
                    ch.waiters = [waiter]
                else:
                    ch.waiters.append(waiter)
            finally:
                self._lock.release()
            try:
                handed = await waiter
            except asyncio.CancelledError:
                with self._lock:  # rare: the plain form reads better
                    self._table.abandon(channel, ch, waiter)
                raise
            if handed is not None:  # a sender on this loop gave it straight here
                item = handed
                break
        # Outside the lock; a copy of an all-immutable shared decode is as private
        # as a decode of its own (memory_queue.shareable).
        shared = item[2]
        return codec.decode(item[1]) if shared is None else shared.copy()

    async def new_channel(self, prefix: str = "specific") -> str:
        """A process-specific name that never repeats, even after `random.seed`."""
        return f"{prefix}.{self._client}!{next(self._counter):x}"

    # Groups

    async def group_add(
        self, group: str, channel: str, *, meta: dict[str, Any] | None = None
    ) -> None:
        """Add `channel` to `group` with its presence metadata (a new `meta`
        replaces the old); in a group with presence events it is then handed
        the group's presence state."""
        self._members_of(group)
        self._lookup(channel)
        meta = {} if meta is None else dict(check_meta(meta))
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                members = self._groups[group] = {}
            ch = self._channels.get(channel) or self._table.open(channel)
            if ch.groups is None:
                ch.groups = {group}
            else:
                ch.groups.add(group)
            members[channel] = now = time.monotonic()
            state = self._presence.joined(group, channel, meta)
            last = None if self._history is None else self._last(group, now)
        if state is not None:
            await self._hand(channel, state)
        if last is not None:
            await self._hand(channel, codec.decode(last))

    async def group_discard(self, group: str, channel: str) -> None:
        members = self._members_of(group)
        if members is None or type(channel) is not str or channel not in members:
            self.require_valid_channel_name(channel)
        with self._lock:
            self._leave(group, channel)

    async def group_send(
        self,
        group: str,
        message: dict[str, Any],
        *,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
    ) -> SendResult:
        """Deliver to every member but the `exclude`d channels; members at capacity
        are counted, never skipped. Every count here is confirmed already:
        `confirm` is checked, not needed."""
        self._members_of(group)
        self.confirm_window(confirm)
        excluded = self.excluded(exclude) if exclude else None
        options = None
        if self._history is not None:
            options = self.group_options.for_group(group)
            if not options.keeps_history:
                options = None
            elif "offset" in message or "epoch" in message:
                message = strip_position(message)
        payload = codec.encode(message)
        now = time.monotonic()
        self._lock.acquire()
        try:
            if options is not None:
                payload = self._history.append(group, options, payload, now)
            members = self._groups.get(group)
            if members and excluded:
                members = {n: t for n, t in members.items() if n not in excluded}
            if not members:
                return _NO_MEMBERS
            # One decode for all members (each takes a copy), worth it from two.
            shared = shareable(payload) if len(members) > 1 else None
            sent, errors, stale, session_calls = self._deliver(
                members, (now + self.expiry, payload, shared), now
            )
            for name in stale:
                self._expire_membership(group, name, now)
        finally:
            self._lock.release()
        result = SendResult.of(sent, errors)
        if session_calls:
            result += await self.sessions.deliver(session_calls, payload)
        return result

    def _deliver(
        self, members: dict[str, float], item: Item, now: float
    ) -> tuple[int, list[BaseException], list[str], list[Any]]:
        """memory_queue.deliver with this layer's tables and timing."""
        timing = (self.expiry, self.group_expiry)
        return deliver(
            self._channels, self.sessions, members, item, now, timing, running_loop()
        )

    async def unregister_session(self, session_id: str) -> None:
        await super().unregister_session(session_id)
        with self._lock:
            ch = self._channels.get(session_id)
            if ch is not None:
                self._table.close_if_idle(session_id, ch)

    async def group_members(self, group: str) -> set[str]:
        """The channels in `group` now: members past `group_expiry` are left out,
        unless a connected session keeps them."""
        self.require_valid_group_name(group)
        oldest = time.monotonic() - self.group_expiry
        with self._lock:
            members = list(self._groups.get(group, {}).items())
        return {
            name
            for name, joined in members
            if joined >= oldest or name in self.sessions
        }

    # Presence (memory_presence.py)

    async def group_presence(self, group: str) -> Presence:
        """The group's presence: user key -> the metadata of each connection."""
        members = await self.group_members(group)
        with self._lock:
            return self._presence.presence(group, members)

    async def group_presence_stats(self, group: str) -> PresenceStats:
        """How many connections the group has, and how many distinct users."""
        members = await self.group_members(group)
        with self._lock:
            return self._presence.stats(group, members)

    async def _send_diff(self, group: str) -> None:
        """On the presence clock: send the group's collected diff. Every delivery
        starts before the first await, so diffs reach each member in order."""
        now = time.monotonic()
        sessions = self.sessions
        with self._lock:
            diff = self._presence.take_diff(group)
            members = self._groups.get(group)
            if diff is None or not members:
                return
            event, own = diff
            payload = codec.encode(event)
            common = {n: t for n, t in members.items() if n not in own}
            calls = self._deliver(common, (now + self.expiry, payload, None), now)[3]
            starts = []
            for name, alone in own.items():
                if alone["joins"] or alone["leaves"]:
                    mine = codec.encode(alone)
                    mine_calls = self._deliver(
                        {name: now}, (now + self.expiry, mine, None), now
                    )
                    starts += [(mine_calls[3], mine)]
        running = asyncio.get_running_loop()
        pending = sessions.start_many(calls, payload, running).pending
        for mine_calls, mine in starts:
            pending.update(sessions.start_many(mine_calls, mine, running).pending)
        if pending:
            await asyncio.wait(pending, timeout=sessions.timeout)

    def _sweep(self, groups: Iterable[str]) -> None:
        """On the presence clock: drop expired memberships of presence groups (past
        `group_expiry`, or whose reader stopped), so that their leaves are sent."""
        now = time.monotonic()
        oldest = now - self.group_expiry
        with self._lock:
            for group in groups:
                for name, joined in list(self._groups.get(group, {}).items()):
                    if name in self.sessions:
                        continue
                    ch = self._channels.get(name)
                    if joined < oldest or (
                        ch is not None
                        and ch.messages
                        and ch.messages[0][0] < now
                        and drop_expired(ch, now, self.expiry)
                    ):
                        self._expire_membership(group, name, now)

    async def group_names(self) -> list[str]:
        """Every group with members now (operators' pages)."""
        with self._lock:
            return sorted(self._groups)

    def membership_count(self) -> int:
        """Memberships in this process now (metrics read it at scrape time)."""
        with self._lock:
            return sum(len(members) for members in self._groups.values())

    # History

    async def group_history(
        self, group: str, *, since: Any = None, limit: int | None = None
    ) -> History:
        """The group's position and its messages after `since` (all it keeps,
        without): see `History` for what `recovered` promises."""
        self.require_valid_group_name(group)
        since = check_since(since)
        limit = check_limit(limit)
        options = self.group_options.for_group(group)
        if self._history is None or not options.keeps_history:
            return History.none()
        with self._lock:
            epoch, offset, payloads, recovered = self._history.read(
                group, options, since, limit, time.monotonic()
            )
        return History(epoch, offset, decoded(payloads), recovered)

    def _last(self, group: str, now: float) -> bytes | None:
        options = self.group_options.for_group(group)
        if not options.last_on_join or self._history is None:
            return None
        return self._history.newest(group, options, now)

    async def _hand(self, channel: str, message: dict[str, Any]) -> None:
        """What a join hands the new member alone (presence state, `last_on_join`);
        the join stands if it cannot take it (a full channel, a failing session)."""
        try:
            await self.send(channel, message)
        except Exception as exc:
            logger.info("%s did not reach %s: %r", message.get("type"), channel, exc)

    # Flush and close

    async def flush(self) -> None:
        """Forget every message and group; receivers already waiting keep waiting."""
        with self._lock:
            self._forget_all()

    def _forget_all(self) -> None:
        self._groups = {}
        if self._history is not None:
            self._history.forget_all()
        self._presence.forget_all()
        self._table.forget_messages()

    async def close(self) -> None:
        """Stop the presence clock (its thread); the layer holds no connections."""
        self._presence.close()

    # Internals

    def _members_of(self, group: str) -> dict[str, float] | None:
        """The group's members, if it has any; as with channels, only a group name
        never seen is checked against the rules."""
        members = self._groups.get(group) if type(group) is str else None
        if members is None:
            self.require_valid_group_name(group)
        return members

    def _lookup(self, name: str) -> Channel | None:
        """The channel's state, if it has any. Only a name never seen is checked
        against the rules: every name in the table passed them on its way in."""
        ch = self._channels.get(name) if type(name) is str else None
        if ch is None:
            self.require_valid_channel_name(name)
        return ch

    def _capacity_of(self, name: str) -> int:
        return self.get_capacity(name) if self.channel_capacity else self.capacity

    def _expire_membership(self, group: str, name: str, now: float) -> None:
        ch = self._channels.get(name)
        if ch is not None and drop_expired(ch, now, self.expiry):
            self._leave_all(name, ch)
        self._leave(group, name)

    def _leave_all(self, name: str, ch: Channel) -> None:
        for group in list(ch.groups or ()):
            self._leave(group, name)

    def _leave(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        left = members is not None and members.pop(channel, None) is not None
        if left:
            self._presence.left(group, channel)
            if not members:
                del self._groups[group]
        ch = self._channels.get(channel)
        if ch is not None and ch.groups:
            ch.groups.discard(group)
            self._table.close_if_idle(channel, ch)
