"""Presence of one Redis layer instance (a "process"): a live key with a short TTL
that a heartbeat renews (beat.py), and a copy of the memberships this instance made
for its own channels and for plain channels, so that it can announce them again
when Redis lost them (restart, failover, expired key) and keep the join times of
live members fresh.

Members of a process whose live key is gone are left out of `group_members` and
counted as failures by `group_send` (which then purges them); a `kill -9` therefore
shows within `presence_timeout` seconds, with nobody calling `group_discard`.

Discards Redis did not confirm stay in `leaving` until a retry lands; the leave
time they carry keeps a retry from removing a membership made again since (a
rejoin here always gets a later join time). State is shared by the event loops
that call the layer and the heartbeat thread, so it is read and changed under
`lock`.
"""

import threading
from collections.abc import Callable
from typing import Any

from .connections import Command, command, script
from .group_scripts import LEAVE
from .keys import box_base, channel_name, group_key, group_tag
from .util import now_ms

Tagged = list[tuple[str, Command]]
Member = tuple[str, str, str | None]
"""(group, box, token): a membership; token is None for a plain channel."""


def leave_steps(
    prefix: str, member: Member, at: int, retry: bool, one_server: bool
) -> list[tuple[str, Command]]:
    """The commands that remove `member` (left at `at` ms): the second, if any,
    runs only when the first answers 0 (its box has no members left in the group).
    A first attempt removes the member whatever its join time; a retry only if it
    joined before `at`. The box leaves the group's box set only if it joined
    before `at` too, so a member that joined meanwhile keeps its box listed."""
    group, box, token = member
    cond = str(at) if retry else ""
    procs = group_key(prefix, group)
    if token is None:
        return [(group_tag(group), script(LEAVE, [procs], [box, cond, at]))]
    members = f"{box_base(prefix, box)}m:{group}"
    if one_server:
        return [(box, script(LEAVE, [members], [token, cond, at, procs, box]))]
    return [
        (box, script(LEAVE, [members], [token, cond, at])),
        (group_tag(group), script(LEAVE, [procs], [box, at, at])),
    ]


class Presence:
    """The live key, the memberships to announce, and the discards to retry."""

    def __init__(
        self, prefix: str, box: str, timeout: float, group_expiry: float
    ) -> None:
        self.prefix = prefix
        self.box = box
        self.base = box_base(prefix, box)
        self.ttl_ms = max(1, int(timeout * 1000))
        self.interval = timeout / 4
        self.group_expiry_ms = int(group_expiry * 1000)
        self.memberships: dict[str, dict[str, int]] = {}  # group -> token -> joined
        self.plain: dict[str, dict[str, int]] = {}  # group -> plain box -> joined
        self.leaving: dict[Member, tuple[int, bool]] = {}  # -> (left at, sticky)
        self.lock = threading.RLock()  # RLock: SIGTERM may land while it is held
        self.reannounced = 0
        self.dirty = False  # a membership may be missing in Redis: announce again
        self._announcing = False
        self._last_leave = 0
        self.people: Any = None  # people.py: memberships' metadata, announced too

    # Joins and leaves, as the layer makes them

    def join(self, group: str, box: str, token: str | None, now: int) -> int:
        """Remember a membership; returns its join time, later than every leave
        this instance recorded (so no retried discard can remove it)."""
        with self.lock:
            self.leaving.pop((group, box, token), None)
            now = max(now, self._last_leave + 1)
            if box == self.box:
                self.memberships.setdefault(group, {})[token or ""] = now
            elif token is None:
                self.plain.setdefault(group, {})[box] = now
            return now

    def forget_plain(self, group: str, box: str) -> None:
        """A plain join that Redis refused (the caller was told): not ours to keep."""
        with self.lock:
            _pop(self.plain, group, box)

    def leave(self, member: Member) -> int:
        """Forget a membership and record its discard until Redis confirms it;
        returns the leave time."""
        group, box, token = member
        with self.lock:
            at = now_ms()
            if box == self.box:
                at = max(at, _pop(self.memberships, group, token or "") or 0)
            elif token is None:
                at = max(at, _pop(self.plain, group, box) or 0)
            self._last_leave = max(self._last_leave, at)
            # an announce in flight may list it again: the heartbeat removes it after
            self.leaving[member] = (at, self._announcing)
            return at

    def left(self, member: Member, at: int) -> None:
        """Redis took the discard of `member` made at `at`."""
        with self.lock:
            if self.leaving.get(member) == (at, False):
                del self.leaving[member]

    def pending(self) -> list[tuple[Member, int]]:
        with self.lock:
            return [(member, at) for member, (at, _) in self.leaving.items()]

    def confirmed(self, done: list[tuple[Member, int]]) -> None:
        with self.lock:
            for member, at in done:
                if self.leaving.get(member, (None,))[0] == at:
                    del self.leaving[member]

    # Reading

    def members_of(self, group: str) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.memberships.get(group, {}).items())

    def groups_of(self, token: str) -> list[str]:
        with self.lock:
            return [g for g, members in self.memberships.items() if token in members]

    def forget_all(self) -> None:
        with self.lock:
            self.memberships.clear()
            self.plain.clear()
            self.leaving.clear()

    # What the heartbeat writes

    def alive(self, *, only_if_present: bool = False) -> Tagged:
        words = ["SET", self.base + "l", b"1", "PX", self.ttl_ms]
        if only_if_present:
            words.append("XX")
        return [(self.box, command(*words))]

    def refresh(self, is_live: Callable[[str], bool], now: int) -> None:
        """Join times of members that still have a receiver or a session become
        `now`, so `group_expiry` only ends memberships nobody uses."""
        with self.lock:
            for members in self.memberships.values():
                for token in members:
                    if is_live(channel_name(self.box, token)):
                        members[token] = max(members[token], now)
            for boxes in self.plain.values():
                for box in boxes:
                    if is_live(channel_name(box, None)):
                        boxes[box] = max(boxes[box], now)

    def announce(self, now: int) -> Tagged:
        """Everything Redis must hold for this process: the live key, and each
        membership with its join time (so `group_expiry` still holds). Call
        `announced()` once it ran, whether it worked or not."""
        cutoff = now - self.group_expiry_ms
        tagged = self.alive()
        with self.lock:
            self._announcing = True
            for group, members in _expire(self.memberships, cutoff):
                tagged += self._members_commands(group, members)
            for group, boxes in _expire(self.plain, cutoff):
                pairs = [x for box, joined in boxes.items() for x in (joined, box)]
                tagged += self._index_commands(group, pairs)
        if self.people is not None:
            tagged += self.people.announce()
        return tagged

    def announced(self) -> None:
        with self.lock:
            self._announcing = False

    def farewell(self) -> list[Tagged]:
        """What removes this process from Redis at once, as two batches to run one
        after the other: its members' sets, its place in their groups and its
        presence connections (their leaves wait in grace); then its live key.
        In that order another process's sweep never finds this box dead while
        it still holds connections, which it would announce as leaves at once.
        Forgets its memberships (plain channels are shared names: theirs stay in
        Redis until `group_expiry`)."""
        tagged: Tagged = []
        with self.lock:
            for group in self.memberships:
                tagged.append((self.box, command("DEL", f"{self.base}m:{group}")))
                procs = group_key(self.prefix, group)
                leave = script(LEAVE, [procs], [self.box, "", 0])
                tagged.append((group_tag(group), leave))
            self.memberships.clear()
            self.plain.clear()
        if self.people is not None:
            tagged += self.people.farewell()
        return [tagged, [(self.box, command("DEL", self.base + "l"))]]

    def _members_commands(self, group: str, members: dict[str, int]) -> Tagged:
        pairs = [x for token, joined in members.items() for x in (joined, token)]
        key = f"{self.base}m:{group}"
        return [
            (self.box, command("ZADD", key, "GT", *pairs)),
            (self.box, command("PEXPIRE", key, self.group_expiry_ms)),
            *self._index_commands(group, [max(pairs[::2]), self.box]),
        ]

    def _index_commands(self, group: str, pairs: list[Any]) -> Tagged:
        procs = group_key(self.prefix, group)
        return [
            (group_tag(group), command("ZADD", procs, "GT", *pairs)),
            (group_tag(group), command("PEXPIRE", procs, self.group_expiry_ms)),
        ]


def _pop(table: dict[str, dict[str, int]], group: str, key: str) -> int | None:
    members = table.get(group)
    if members is None:
        return None
    joined = members.pop(key, None)
    if not members:
        del table[group]
    return joined


def _expire(
    table: dict[str, dict[str, int]], cutoff: int
) -> list[tuple[str, dict[str, int]]]:
    """Drop entries joined before `cutoff`; the (group, copy of entries) left."""
    kept = []
    for group, members in list(table.items()):
        for key, joined in list(members.items()):
            if joined < cutoff:
                del members[key]
        if members:
            kept.append((group, dict(members)))
        else:
            del table[group]
    return kept
