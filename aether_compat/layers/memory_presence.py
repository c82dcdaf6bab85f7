"""The in-memory layer's presence: every membership's metadata, and for groups with
`presence_events` the announced state that the state and diff events follow.

How the seam between a joiner's state and its first diff holds: a group's changes
are collected for `DIFF_WINDOW` and then announced in one diff with the next
`_seq`; `shown` is what all diffs so far announced. A joiner's state is `shown`
(plus its own key) with the `_seq` of the last diff, and the joiner is a member
when the next diff goes out, so it gets every change not in its state, once. Its
own join, already in its state, is left out of the diff it gets. Sequence numbers
come from one counter per layer, so they never repeat, even for a group that
emptied and filled again.

Grace: the last connection of a key to go starts a timer of `presence_grace`
seconds; the same key joining again meanwhile cancels it, and nothing is announced.
When it runs out the key is collected as a leave.

Timers run on the layer's `Clock` (a daemon thread with its own loop: see
clock.py), since the layer is called from loops that may end before a timer is
due. Every method here runs under the layer's lock unless it says otherwise.
"""

import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..presence import (
    DIFF_WINDOW,
    PRESENCE_DIFF,
    PRESENCE_STATE,
    Presence,
    PresenceStats,
    presence_key,
)
from .clock import Clock
from .group_options import GroupOptionTable

Meta = dict[str, Any]
Event = dict[str, Any]
Diff = tuple[Event, dict[str, Event]]
"""A diff to send: the event for every member, and for members that joined in
its window and whose own join it holds, their event without it."""

_NO_META: Meta = {}
_SWEEP_LIMITS = (0.05, 1.0)  # seconds between expiry sweeps, at least and at most


class _Room:
    """One presence-events group: live connections by key, what was announced,
    keys in their grace period, and what changed since the last diff."""

    __slots__ = (
        "by_channel",
        "due",
        "fresh",
        "gone",
        "keys",
        "seq",
        "shown",
        "touched",
    )

    def __init__(self, seq: int) -> None:
        self.keys: dict[str, dict[str, Meta]] = {}
        self.by_channel: dict[str, str] = {}
        self.shown: dict[str, list[Meta]] = {}
        self.gone: dict[str, tuple[object, list[Meta]]] = {}
        self.touched: set[str] = set()
        self.fresh: dict[str, str] = {}
        self.seq = seq
        self.due = False

    def state(self, own: str) -> Presence:
        """What the joiner whose key is `own` is told: `shown`, live metadata where
        the key is live, and its own key."""
        state = {
            key: list(self.keys[key].values()) if key in self.keys else metas
            for key, metas in self.shown.items()
        }
        state[own] = list(self.keys[own].values())
        return state

    @property
    def idle(self) -> bool:
        return not (self.keys or self.gone or self.shown or self.touched or self.due)


class MemoryPresence:
    """Presence tables of one in-memory layer. `flush(group)` and `sweep(groups)`
    are the layer's: the first sends a group's diff, the second drops expired
    memberships (which then leave here like any other)."""

    def __init__(
        self,
        lock: threading.Lock,
        options: GroupOptionTable,
        flush: Callable[[str], Awaitable[None]],
        sweep: Callable[[Iterable[str]], None],
        sweep_every: float,
    ) -> None:
        self._lock = lock
        self._options = options
        self._flush = flush
        self._sweep = sweep
        self._sweep_every = min(max(sweep_every, _SWEEP_LIMITS[0]), _SWEEP_LIMITS[1])
        self._sweeping = False
        self._metas: dict[str, dict[str, Meta]] = {}
        self._rooms: dict[str, _Room] = {}
        self._seq = 0
        self.clock = Clock("aether-presence")

    # Memberships

    def joined(self, group: str, channel: str, meta: Meta) -> Event | None:
        """Note a membership; returns the state event to hand the joiner in a group
        with presence events (None in others)."""
        if meta:
            self._metas.setdefault(group, {})[channel] = meta
        elif (metas := self._metas.get(group)) is not None:
            metas.pop(channel, None)
        if not self._options or not self._options.for_group(group).presence_events:
            return None
        room = self._rooms.get(group)
        if room is None:
            room = self._rooms[group] = _Room(self._seq)
        self._start_sweeping()
        key = presence_key(meta, channel)
        if room.by_channel.get(channel) not in (None, key):
            self._remove(room, group, channel)
        conns = room.keys.get(key)
        if conns is None:
            conns = room.keys[key] = {}
            if room.gone.pop(key, None) is None:
                self._touch(room, group, key)
        conns[channel] = meta
        room.by_channel[channel] = key
        room.fresh[channel] = key
        state = room.state(key)
        return {
            "type": PRESENCE_STATE,
            "group": group,
            "presence": state,
            "_seq": room.seq,
        }

    def left(self, group: str, channel: str) -> None:
        """Note the end of a membership (discarded, expired or flushed out)."""
        metas = self._metas.get(group)
        if metas is not None and metas.pop(channel, None) is not None and not metas:
            del self._metas[group]
        room = self._rooms.get(group)
        if room is not None:
            self._remove(room, group, channel)
            if room.idle:
                del self._rooms[group]

    def forget_all(self) -> None:
        """Forget everything, announcing nothing (the layer's `flush()`)."""
        self._metas = {}
        self._rooms = {}

    def close(self) -> None:
        """Stop the clock (called outside the lock: it waits for the clock's
        thread). Timers not yet due are dropped: a diff that was due goes out with
        the next change, and a leave in its grace period is not announced."""
        self.clock.close()
        with self._lock:
            self._sweeping = False
            for room in self._rooms.values():
                room.due = False

    # Reading

    def presence(self, group: str, channels: Iterable[str]) -> Presence:
        """The presence of these member channels of `group`, by key."""
        metas = self._metas.get(group) or _NO_META
        found: Presence = {}
        for channel in channels:
            meta = metas.get(channel, _NO_META)
            found.setdefault(presence_key(meta, channel), []).append(dict(meta))
        return found

    def stats(self, group: str, channels: Iterable[str]) -> PresenceStats:
        found = self.presence(group, channels)
        return PresenceStats(sum(map(len, found.values())), len(found))

    # Diffs

    def take_diff(self, group: str) -> Diff | None:
        """The changes collected for `group`, as its next diff (None: they cancelled
        out); from now on they are in `shown`, so in the state of later joiners."""
        room = self._rooms.get(group)
        if room is None:
            return None
        room.due = False
        joins: Presence = {}
        leaves: Presence = {}
        for key in room.touched:
            present = key in room.keys or key in room.gone
            if present and key not in room.shown:
                conns = room.keys.get(key)
                metas = list(conns.values()) if conns else room.gone[key][1]
                joins[key] = room.shown[key] = metas
            elif not present and key in room.shown:
                leaves[key] = room.shown.pop(key)
        room.touched = set()
        fresh, room.fresh = room.fresh, {}
        if room.idle:
            del self._rooms[group]
        if not (joins or leaves):
            return None
        self._seq += 1
        room.seq = self._seq
        event = {
            "type": PRESENCE_DIFF,
            "group": group,
            "joins": joins,
            "leaves": leaves,
            "_seqs": _numbered(joins, leaves, room.seq),
        }
        own = {
            channel: _without_join(event, key)
            for channel, key in fresh.items()
            if key in joins
        }
        return event, own

    # Internals

    def _remove(self, room: _Room, group: str, channel: str) -> None:
        room.fresh.pop(channel, None)
        key = room.by_channel.pop(channel, None)
        if key is None:
            return
        conns = room.keys[key]
        meta = conns.pop(channel)
        if conns:
            return
        del room.keys[key]
        grace = self._options.for_group(group).presence_grace
        if grace <= 0:
            self._touch(room, group, key)
            return
        token = object()
        room.gone[key] = (token, [meta])
        self.clock.call_later(grace, self._grace_over, group, key, token)

    def _touch(self, room: _Room, group: str, key: str) -> None:
        room.touched.add(key)
        if not room.due:
            room.due = True
            self.clock.call_later(DIFF_WINDOW, self._diff_due, group)

    # On the clock's thread (they take the lock)

    def _grace_over(self, group: str, key: str, token: object) -> None:
        with self._lock:
            room = self._rooms.get(group)
            if room is not None and room.gone.get(key, (None,))[0] is token:
                del room.gone[key]
                self._touch(room, group, key)

    def _diff_due(self, group: str) -> None:
        self.clock.spawn(self._flush(group))

    def _start_sweeping(self) -> None:
        if not self._sweeping:
            self._sweeping = True
            self.clock.call_later(self._sweep_every, self._sweep_due)

    def _sweep_due(self) -> None:
        with self._lock:
            groups = list(self._rooms)
            self._sweeping = bool(groups)
        if groups:
            self._sweep(groups)
            self.clock.call_later(self._sweep_every, self._sweep_due)


def _without_join(event: Event, key: str) -> Event:
    joins = {k: v for k, v in event["joins"].items() if k != key}
    return {**event, "joins": joins}


def _numbered(joins: Presence, leaves: Presence, seq: int) -> dict[str, int]:
    """The diff's `_seqs`: every change of one diff has the diff's number here
    (one net change per key), as the Redis layer numbers each change."""
    numbers = {"+" + key: seq for key in joins}
    numbers.update(("-" + key, seq) for key in leaves)
    return numbers
