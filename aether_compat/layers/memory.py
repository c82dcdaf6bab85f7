"""InMemoryChannelLayer: queues, groups, expiry and presence for one process.

Every operation touches only the channels it names (a group_send costs O(members)),
messages are encoded once with msgpack (the Redis wire format) and decoded per
receiver, and a cancelled `receive()` never takes a message with it.
"""

import asyncio
import itertools
import secrets
import time
from collections import deque
from typing import Any

from ..errors import ChannelFull
from ..results import SendResult
from . import codec
from .base import AetherLayer, call_session, call_sessions

_NO_MEMBERS = SendResult()


class _Channel:
    """One channel's undelivered messages, its waiting receivers and its groups."""

    __slots__ = ("capacity", "groups", "messages", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: deque[tuple[float, bytes]] | None = None
        self.waiters: list[asyncio.Future[None]] | None = None
        self.groups: set[str] | None = None

    def is_idle(self) -> bool:
        return not (self.messages or self.waiters or self.groups)


class InMemoryChannelLayer(AetherLayer):
    """A channel layer for one process: select it in `settings.CHANNEL_LAYERS`."""

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        self._channels: dict[str, _Channel] = {}
        self._groups: dict[str, dict[str, float]] = {}
        self._client = secrets.token_hex(6)
        self._counter = itertools.count(1)

    # Channels API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` on `channel`; raise `ChannelFull` when it is at capacity."""
        self.require_valid_channel_name(channel)
        payload = codec.encode(message)
        sender = self.sessions.get(channel)
        if sender is not None:
            await call_session(channel, sender, payload)
            return
        now = time.monotonic()
        ch = self._channels.get(channel) or self._open(channel)
        self._push(channel, ch, payload, now + self.expiry, now)

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for the next message on `channel`; safe to cancel at any point."""
        self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        while True:
            ch = self._channels.get(channel) or self._open(channel)
            payload = self._pop(channel, ch)
            if payload is not None:
                if ch.is_idle():
                    self._close_if_idle(channel, ch)
                return codec.decode(payload)
            # _pop may have retired an expired channel: wait on the live one.
            ch = self._channels.get(channel) or self._open(channel)
            waiter = loop.create_future()
            if ch.waiters is None:
                ch.waiters = []
            ch.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._abandon(channel, ch, waiter)
                raise

    async def new_channel(self, prefix: str = "specific") -> str:
        """A process-specific name that never repeats, even after `random.seed`."""
        return f"{prefix}.{self._client}!{next(self._counter):x}"

    # Groups

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        ch = self._channels.get(channel) or self._open(channel)
        if ch.groups is None:
            ch.groups = set()
        ch.groups.add(group)
        self._groups.setdefault(group, {})[channel] = time.monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._leave(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> SendResult:
        """Deliver to every member; members at capacity are counted, never skipped."""
        self.require_valid_group_name(group)
        payload = codec.encode(message)
        members = self._groups.get(group)
        if not members:
            return _NO_MEMBERS
        now = time.monotonic()
        deadline = now + self.expiry
        oldest = now - self.group_expiry
        channels = self._channels
        session_for = self.sessions.get if len(self.sessions) else None
        sent = 0
        errors: list[BaseException] = []
        stale: list[str] = []
        session_calls = []
        for name, joined in members.items():
            if joined < oldest:
                stale.append(name)
                continue
            if session_for is not None and (sender := session_for(name)) is not None:
                session_calls.append((name, sender))
                continue
            ch = channels[name]
            messages = ch.messages
            if messages and messages[0][0] < now:
                stale.append(name)
                continue
            try:
                self._push(name, ch, payload, deadline, now)
            except ChannelFull as exc:
                errors.append(exc)
            else:
                sent += 1
        for name in stale:
            self._expire_membership(group, name, now)
        result = SendResult.of(sent, errors)
        if session_calls:
            result += await call_sessions(session_calls, payload)
        return result

    async def group_members(self, group: str) -> set[str]:
        """The channels in `group` now, memberships past `group_expiry` excluded."""
        self.require_valid_group_name(group)
        oldest = time.monotonic() - self.group_expiry
        members = self._groups.get(group, {})
        return {name for name, joined in members.items() if joined >= oldest}

    # Flush and close

    async def flush(self) -> None:
        """Forget every message and group; receivers already waiting keep waiting."""
        for ch in self._channels.values():
            ch.messages = None
            ch.groups = None
        self._groups = {}
        for name, ch in list(self._channels.items()):
            self._close_if_idle(name, ch)

    async def close(self) -> None:
        """Nothing to release: the layer holds no connections."""

    # Internals

    def _open(self, name: str) -> _Channel:
        ch = _Channel(
            self.get_capacity(name) if self.channel_capacity else self.capacity
        )
        self._channels[name] = ch
        return ch

    def _push(
        self, name: str, ch: _Channel, payload: bytes, deadline: float, now: float
    ) -> None:
        messages = ch.messages
        if messages is None:
            messages = ch.messages = deque()
        elif len(messages) >= ch.capacity:
            self._drop_expired(name, ch, now)
            if len(messages) >= ch.capacity:
                raise ChannelFull(name, ch.capacity)
        messages.append((deadline, payload))
        waiters = ch.waiters
        if waiters:
            _wake_one(waiters)

    def _pop(self, name: str, ch: _Channel) -> bytes | None:
        messages = ch.messages
        if not messages:
            return None
        if messages[0][0] < time.monotonic():
            self._drop_expired(name, ch, time.monotonic())
            if not messages:
                return None
        return messages.popleft()[1]

    def _drop_expired(self, name: str, ch: _Channel, now: float) -> None:
        """Remove messages past `expiry`; a channel that let one expire unread leaves
        its groups (CONTRACT.md 43), since its reader is most likely gone."""
        messages = ch.messages
        expired = False
        while messages and messages[0][0] < now:
            messages.popleft()
            expired = True
        if expired:
            for group in list(ch.groups or ()):
                self._leave(group, name)

    def _expire_membership(self, group: str, name: str, now: float) -> None:
        ch = self._channels.get(name)
        if ch is not None and ch.messages and ch.messages[0][0] < now:
            self._drop_expired(name, ch, now)
        self._leave(group, name)

    def _leave(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        left = members is not None and members.pop(channel, None) is not None
        if left and not members:
            del self._groups[group]
        ch = self._channels.get(channel)
        if ch is not None and ch.groups:
            ch.groups.discard(group)
            self._close_if_idle(channel, ch)

    def _abandon(self, name: str, ch: _Channel, waiter: asyncio.Future[None]) -> None:
        """A receiver was cancelled: forget it, and pass on a wake-up it was given."""
        waiters = ch.waiters or []
        if waiter in waiters:
            waiters.remove(waiter)
        elif waiter.done() and not waiter.cancelled() and ch.messages and waiters:
            _wake_one(waiters)
        self._close_if_idle(name, ch)

    def _close_if_idle(self, name: str, ch: _Channel) -> None:
        if (
            ch.is_idle()
            and self._channels.get(name) is ch
            and name not in self.sessions
        ):
            del self._channels[name]


def _wake_one(waiters: list[asyncio.Future[None]]) -> None:
    """Wake the first receiver still waiting, on whichever event loop it runs."""
    while waiters:
        waiter = waiters.pop(0)
        if waiter.done():
            continue
        loop = waiter.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            waiter.set_result(None)
            return
        try:
            loop.call_soon_threadsafe(_resolve, waiter, waiters)
        except RuntimeError:  # that loop is closed: its receiver is gone
            continue
        return


def _resolve(waiter: asyncio.Future[None], waiters: list[asyncio.Future[None]]) -> None:
    if not waiter.done():
        waiter.set_result(None)
    else:  # cancelled on its way: the wake-up goes to the next receiver
        _wake_one(waiters)
