"""Presence of people on the Redis layer: every membership's metadata in its
group's slot, the state and diff events of groups with `presence_events`, and
what this instance must announce again or take out when Redis lost it or the
process stops. The scripts are people_scripts.py; batching and sweeping, on an
event loop, are people_worker.py.

Joins and leaves are decided in Redis (a per-key connection count), so one user
over many tabs, processes and servers is one join and, once its last connection
closed and `presence_grace` passed, one leave. Each announced change takes a
number from the group's sequence in the same step; the state carries the number
it was read at (see /work/spec/presence-internal.md).
"""

import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import MemberUnreachable
from ...presence import PRESENCE_STATE, Presence, PresenceStats, presence_key
from .. import codec
from ..group_options import GroupOptions
from .connections import Command, Connections, script
from .keys import channel_name, group_tag
from .people_scripts import JOIN, LEAVE, READ
from .people_values import (
    decode_value,
    encode_value,
    field_of,
    group_base,
    seq_floor,
    state_of,
)
from .people_worker import Worker, changes_of
from .util import REDIS_FAILURES, Parts, logger, now_ms

Tagged = list[tuple[str, Command]]
RECHECK_MS = 1000
Options = Callable[[str], GroupOptions]
Send = Callable[[str, dict[str, Any]], Awaitable[None]]


class People:
    """Presence of one Redis layer instance; names arrive checked."""

    def __init__(
        self, parts: Parts, options: Options, send: Send, worker: Worker
    ) -> None:
        self.prefix = parts.prefix
        self.box = parts.presence.box
        self.ttl_ms = max(parts.rules.group_expiry_ms, 1)
        self._connections: Connections = parts.connections
        self._stats = parts.stats
        self._options = options
        self._send = send
        self.worker = worker
        self._lock = threading.Lock()
        self.mine: dict[str, dict[str, bytes]] = {}
        """group -> field -> value: memberships this instance made for its own
        channels and plain ones, to announce again when Redis lost them."""
        self.unconfirmed: dict[str, set[str]] = {}
        """group -> fields of this instance's leaves that Redis has not confirmed
        (failed, or cancelled as the process stops): the farewell, or a sweep's
        repair, takes them out."""
        self.owed: dict[str, set[str]] = {}  # group -> joiners still owed a state
        self.touched: dict[str, int] = {}
        """group -> count of joins and leaves started or ended: a sweep repairs
        a group only if none ran while it looked (else counts differ in flight)."""

    # Joining and leaving

    def joining(self, group: str, channel: str, meta: dict[str, Any]) -> "Join":
        """The presence part of a group_add, to run with the membership (one round
        trip: `Groups.add`), then `finish()`."""
        options = self._options(group)
        events = options.presence_events
        box, field = field_of(channel)
        # Without events nothing counts keys, so a membership without metadata
        # stores nothing: readers name it from group_members (presence_key is
        # the same in every process). An empty value takes out an older entry.
        stored = bool(meta) or events
        value = encode_value(presence_key(meta, channel), meta) if stored else b""
        self.touch(group)
        if box == self.box or box.startswith("c."):
            with self._lock:
                if stored:
                    self.mine.setdefault(group, {})[field] = value
                else:
                    self._forget_mine(group, field)
        if events:
            self.worker.ensure()
        lua = self.join_command(group, options, [(field, value)], state=events)
        return Join(self, group, channel, events, (group_tag(group), lua))

    async def finish(self, join: "Join") -> None:
        """With presence events: queue the changes, hand the joiner the state.
        Without a result (Redis did not take it), the sweep or the heartbeat
        writes the metadata later."""
        self.touch(join.group)
        if not join.events:
            return
        group, channel = join.group, join.channel
        if join.result is None:  # the sweep sends the state once Redis answers
            with self._lock:
                self.owed.setdefault(group, set()).add(channel)
            return
        changes, seq, values, ghosts = join.result
        self.worker.queue(group, changes_of(changes), (channel, int(seq)))
        state = state_of(values, ghosts)
        if await self._sendstate_of(group, [channel], state, int(seq)):
            with self._lock:  # the sweep tries again with a fresh state
                self.owed.setdefault(group, set()).add(channel)

    async def send_owed(self) -> None:
        """The states of joins Redis did not take, once it holds their
        connections again (the sweep calls this after its repairs)."""
        with self._lock:
            owed, self.owed = self.owed, {}
        for group, channels in owed.items():
            base = group_base(self.prefix, group)
            lua = script(READ, [base + "pc"], [base])
            try:
                ((pairs, ghosts, seq),) = await self._connections.execute(
                    [(group_tag(group), lua)]
                )
            except REDIS_FAILURES:
                with self._lock:
                    self.owed.setdefault(group, set()).update(channels)
                raise
            state = state_of(pairs[1::2], ghosts)
            late = await self._sendstate_of(group, sorted(channels), state, int(seq))
            with self._lock:  # e.g. this process not announced again yet
                self.owed.setdefault(group, set()).update(late)
                if not self.owed[group]:
                    del self.owed[group]

    async def _sendstate_of(
        self, group: str, channels: list[str], state: Presence, seq: int
    ) -> list[str]:
        """Send the state; the channels that were unreachable (to try again)."""
        event = {"type": PRESENCE_STATE, "group": group, "presence": state}
        late = []
        for channel in channels:
            try:
                await self._send(channel, {**event, "_seq": seq})
            except MemberUnreachable:
                late.append(channel)
            except Exception as exc:  # the membership stands; the member missed it
                logger.warning(
                    "presence state of %s not sent to %s: %r", group, channel, exc
                )
        return late

    def leaving(self, group: str, channel: str) -> "Leave":
        """The presence part of a group_discard, to run with it (`Groups.discard`),
        then `left()`: the key's last connection leaves after `presence_grace`."""
        _, field = field_of(channel)
        self.touch(group)
        with self._lock:
            self.owed.get(group, set()).discard(channel)
            if self._forget_mine(group, field):
                self.unconfirmed.setdefault(group, set()).add(field)
        options = self._options(group)
        if options.presence_events:
            self.worker.ensure()  # it announces the leave when grace ends
        lua = self.leave_command(group, options, [field], deferred=False)
        return Leave((group_tag(group), lua), group, field)

    def _forget_mine(self, group: str, field: str) -> bool:
        """Drop a membership from `mine` (the caller holds the lock); whether
        it was there."""
        fields = self.mine.get(group)
        if fields is None or fields.pop(field, None) is None:
            return False
        if not fields:
            del self.mine[group]
        return True

    def confirm(self, group: str, fields: set[str]) -> None:
        """Redis no longer holds these fields of `group` (a leave or repair ran)."""
        with self._lock:
            left = self.unconfirmed.get(group)
            if left is not None:
                left -= fields
                if not left:
                    del self.unconfirmed[group]

    def left(self, leave: "Leave") -> None:
        """Announce what the leave changed. Without a result (Redis did not take
        it) the sweep takes the stale connection out."""
        self.touch(leave.group)
        if leave.result is not None:
            self.confirm(leave.group, {leave.field})
        if leave.result:
            self.worker.queue(leave.group, changes_of(leave.result), None)

    def join_command(
        self,
        group: str,
        options: GroupOptions,
        pairs: list[tuple[str, bytes]],
        state: bool = False,
        own: str = "",
    ) -> Command:
        base = group_base(self.prefix, group)
        # A repair (`own`) may race a join in flight: what it takes out waits in
        # grace for at least a second, so the next sweep puts it back silently.
        due = self._due(options, False, RECHECK_MS if own else 0)
        args = [base, int(options.presence_events), self.ttl_ms, seq_floor()]
        args += [int(state), due, own]
        args += [x for pair in pairs for x in pair]
        return script(JOIN, [base + "pc"], args)

    def leave_command(
        self, group: str, options: GroupOptions, fields: list[str], deferred: bool
    ) -> Command:
        """`deferred`: even with no grace the leave waits in `pg` (for a process
        that stops and will not be there to announce it: others settle it)."""
        base = group_base(self.prefix, group)
        due = self._due(options, deferred)
        args = [base, int(options.presence_events), seq_floor(), due, *fields]
        return script(LEAVE, [base + "pc"], args)

    def _due(self, options: GroupOptions, deferred: bool, least: int = 0) -> str:
        grace_ms = max(int(options.presence_grace * 1000), least)
        return str(now_ms() + grace_ms) if grace_ms or deferred else ""

    # Reading

    async def read(self, group: str, members: set[str]) -> tuple[Presence, int]:
        """The group's presence: connections of `members` (live processes, as
        `group_members` says), plus keys in grace for presence-events groups;
        and how many connections it has (keys in grace have none)."""
        base = group_base(self.prefix, group)
        lua = script(READ, [base + "pc"], [base])
        ((pairs, ghosts, _),) = await self._connections.execute(
            [(group_tag(group), lua)]
        )
        found: Presence = {}
        strays = set()
        bare = set(members)  # members without stored metadata
        for i in range(0, len(pairs), 2):
            box, _, token = pairs[i].decode().partition(" ")
            channel = channel_name(box, token or None)
            if channel in members:
                bare.discard(channel)
                key, meta = decode_value(pairs[i + 1])
                found.setdefault(key, []).append(codec.decode(meta))
            elif box.startswith("p.") and box != self.box:
                strays.add(box)
        events = self._options(group).presence_events
        if not events:  # with events every membership is stored (or not yet)
            for channel in bare:
                found.setdefault(presence_key({}, channel), []).append({})
        if strays:  # maybe a crashed process's: take them out now
            await self.worker.prune(group, sorted(strays), events)
        connections = sum(len(metas) for metas in found.values())
        if events:
            for i in range(0, len(ghosts), 2):
                key = ghosts[i].decode()
                if key not in found:
                    found[key] = [codec.decode(ghosts[i + 1])]
        return found, connections

    async def stats(self, group: str, members: set[str]) -> PresenceStats:
        found, connections = await self.read(group, members)
        return PresenceStats(connections, len(found))

    def events(self, group: str) -> bool:
        return self._options(group).presence_events

    def options_of(self, group: str) -> GroupOptions:
        return self._options(group)

    # For the heartbeat (beat.py, on its thread) and the worker

    def own_pairs(self, group: str) -> tuple[list[tuple[str, bytes]], set[str]]:
        """This process's own connections in `group` (field, value), and the
        fields of its unconfirmed leaves there (a repair with those pairs takes
        them out)."""
        with self._lock:
            fields = self.mine.get(group, {})
            pairs = [(f, v) for f, v in fields.items() if f.startswith(self.box + " ")]
            return pairs, set(self.unconfirmed.get(group, ()))

    def groups(self) -> list[str]:
        """The groups a sweep looks at: where this instance has memberships or
        leaves Redis has not confirmed."""
        with self._lock:
            groups = self.mine.keys() | self.unconfirmed.keys()
            for group in [g for g in self.touched if g not in groups]:
                del self.touched[group]
            return list(groups)

    def touch(self, group: str) -> None:
        with self._lock:
            self.touched[group] = self.touched.get(group, 0) + 1

    def announce(self) -> Tagged:
        """The metadata of memberships in groups without presence events, for the
        heartbeat to write again (those with events: the worker's sweep)."""
        with self._lock:
            mine = {g: dict(f) for g, f in self.mine.items()}
        tagged = []
        for group, fields in mine.items():
            options = self._options(group)
            if not options.presence_events:
                lua = self.join_command(group, options, list(fields.items()))
                tagged.append((group_tag(group), lua))
        return tagged

    def farewell(self) -> Tagged:
        """Take every membership's metadata out as the process stops; the keys'
        leaves wait in grace (at least until the next sweep of another process),
        so a user who reconnects elsewhere meanwhile is announced nothing.
        Leaves Redis has not confirmed go too: a stop can cancel them in flight."""
        with self._lock:
            mine, self.mine = self.mine, {}
            unconfirmed, self.unconfirmed = self.unconfirmed, {}
        fields = {group: set(f) for group, f in mine.items()}
        for group, f in unconfirmed.items():
            fields.setdefault(group, set()).update(f)
        return [
            (
                group_tag(group),
                self.leave_command(group, self._options(group), sorted(f), True),
            )
            for group, f in fields.items()
        ]

    def forget_all(self) -> None:
        with self._lock:
            self.mine.clear()
            self.unconfirmed.clear()
            self.owed.clear()


class Join:
    """One group_add's presence command, and its result once it ran."""

    __slots__ = ("channel", "events", "group", "people", "result", "tagged")

    def __init__(
        self, people: People, group: str, channel: str, events: bool, tagged: Any
    ) -> None:
        self.people, self.group, self.channel = people, group, channel
        self.events, self.tagged = events, tagged
        self.result: Any = None

    async def finish(self) -> None:
        await self.people.finish(self)


class Leave:
    """One group_discard's presence command, and its result once it ran."""

    __slots__ = ("field", "group", "result", "tagged")

    def __init__(self, tagged: Any, group: str, field: str) -> None:
        self.tagged, self.group, self.field = tagged, group, field
        self.result: Any = None
