"""The in-memory layer's channel queues: what an item holds, what a receiver takes
out of it, when items expire, and the fan-out that puts one item on many queues.

A group_send decodes its message once, not once per member. When every value of
that decoded dict is immutable (str, bytes, int, float, bool, None), the item
carries it and each receiver takes a shallow copy: a dict of its own whose values
no one can change, as private as a fresh decode and several times cheaper. Any
other message (a list, a nested dict) is decoded afresh for each receiver, so a
receiver that mutates what it got never changes what another one gets.

A receiver waiting on the sender's event loop, with nothing queued before it, is
handed its item in its waiter's result: it returns without taking the lock again.
Its `receive()` puts a handed item back at the front if it is cancelled before it
runs, so no message is lost. A receiver on another loop is woken to take the item
from the queue, as the shared `wakeup` helpers do.

Everything here runs under the layer's lock (the caller holds it). What a receiver
gets from an item, `shared.copy()` or a decode, is in `receive()` itself.
"""

import asyncio
from collections import deque
from typing import Any

from ..errors import ChannelFull, MemberUnreachable
from ..sessions import Session, SessionTable
from . import codec
from .wakeup import wake_one

# (deadline, payload, the decoded message to copy, or None to decode the payload)
Item = tuple[float, bytes, dict[str, Any] | None]

STOPPED_READING = "its reader stopped reading: it left its groups"
_IMMUTABLE = frozenset((str, bytes, int, float, bool, type(None)))


class Channel:
    """One channel's undelivered items, its waiting receivers, its groups, and
    when a reader last asked for a message (None: never yet)."""

    __slots__ = ("capacity", "groups", "messages", "read_at", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: deque[Item] | None = None
        # Each waiter's result: its handed item, or None to look in `messages`.
        self.waiters: list[asyncio.Future[Item | None]] | None = None
        self.groups: set[str] | None = None
        self.read_at: float | None = None


def shareable(payload: bytes) -> dict[str, Any] | None:
    """The decoded message when receivers may share it through shallow copies
    (all its values immutable), else None: each receiver then decodes its own."""
    message = codec.decode(payload)
    if all(map(_IMMUTABLE.__contains__, map(type, message.values()))):
        return message
    return None


def hand_over(
    ch: Channel, item: Item, running: asyncio.AbstractEventLoop | None, now: float
) -> bool:
    """Give `item` to the first waiting receiver if it waits on the running loop
    and nothing is queued before it; False: the caller queues it instead."""
    waiters = ch.waiters
    if waiters and not ch.messages:
        waiter = waiters[0]
        if waiter.get_loop() is running and not waiter.done():
            del waiters[0]
            ch.read_at = now  # it reads: what it asked for is taken now
            waiter.set_result(item)
            return True
    return False


def drop_expired(ch: Channel, now: float, expiry: float) -> bool:
    """Remove items past their deadline; True when they expired because the
    channel's reader stopped: none waits, and none asked for `expiry` seconds.
    A channel never read yet keeps its groups (its consumer may not have
    started), as does a live reader that is only slower than its senders."""
    messages = ch.messages
    while messages and messages[0][0] < now:
        messages.popleft()
    read_at = ch.read_at
    return not ch.waiters and read_at is not None and now - read_at > expiry


def deliver(
    channels: dict[str, Channel],
    sessions: SessionTable,
    members: dict[str, float],
    item: Item,
    now: float,
    timing: tuple[float, float],
    running: asyncio.AbstractEventLoop | None,
) -> tuple[int, list[BaseException], list[str], list[Session]]:
    """Queue one shared item on every live member (the hot loop of group_send,
    kept flat); `timing` is (expiry, group_expiry). Returns what it could not do
    here: failures, memberships to end, and members served by a session (which a
    connected consumer keeps past `group_expiry`)."""
    expiry, group_expiry = timing
    oldest = now - group_expiry
    by_session = sessions if len(sessions) else None
    sent = 0
    errors: list[BaseException] = []
    stale: list[str] = []
    session_calls: list[Session] = []
    for name, joined in members.items():
        if by_session is not None and (session := by_session.get(name)) is not None:
            session_calls.append(session)
            continue
        if joined < oldest:
            stale.append(name)
            continue
        ch = channels[name]
        messages = ch.messages
        if messages is None:
            messages = ch.messages = deque()
        elif messages and messages[0][0] < now and drop_expired(ch, now, expiry):
            stale.append(name)
            errors.append(MemberUnreachable(name, STOPPED_READING))
            continue
        if len(messages) >= ch.capacity:
            errors.append(ChannelFull(name, ch.capacity))
            continue
        sent += 1
        waiters = ch.waiters
        if not waiters:
            messages.append(item)
            continue
        # hand_over, inline: this runs once per member.
        waiter = waiters[0]
        if not messages and waiter.get_loop() is running and not waiter.done():
            del waiters[0]
            ch.read_at = now
            waiter.set_result(item)
        else:
            messages.append(item)
            wake_one(waiters, running)
    return sent, errors, stale, session_calls
