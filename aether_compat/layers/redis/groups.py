"""Groups of the Redis layer: membership, counted fan-out and presence.

A group key lists the boxes (processes, plain channels) where the group has members;
each process box lists its own members. So a group_send stores one message per
process, whatever the number of members there, and checks every member's capacity
in the same script. On one server that is one script call; on several hosts or a
Cluster it is one call for the group and one pipeline per host for the boxes.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...errors import ChannelFull, MemberUnreachable
from ...results import SendResult
from ...sessions import Session
from .confirm import Request, collect
from .connections import command, script
from .group_scripts import (
    DELIVER_PLAIN,
    DELIVER_PROC,
    GROUP_BOXES,
    GROUP_SEND,
)
from .keys import box_base, channel_name, group_key, group_tag, route
from .members import read_members
from .presence import leave_steps
from .util import REDIS_FAILURES, Parts, logger, now_ms

if TYPE_CHECKING:
    from .history import Append

Sent = tuple[int, list[BaseException], dict[str, list[str]]]
"""What a delivery script reports: sent, failures, and box -> tokens stored."""

GONE = "its process stopped announcing itself (crashed or cut off from Redis)"


def skip_entries(channels: Iterable[str]) -> list[str]:
    """How the delivery scripts name members to leave out: "<box> <token>" for a
    process's channel, the box itself for a plain channel."""
    entries = []
    for channel in channels:
        box, token = route(channel)
        entries.append(box if token is None else f"{box} {token}")
    return entries


class Groups:
    """Memberships in Redis, counted fan-out and member listing for one layer
    instance (whose own box is `presence.box`). Names arrive checked."""

    def __init__(self, parts: Parts) -> None:
        self.prefix = parts.prefix
        self.rules = parts.rules
        self.stats = parts.stats
        self._box = parts.presence.box
        self._connections = parts.connections
        self._presence = parts.presence
        self._sessions = parts.sessions
        self._seal = parts.seal

    async def add(self, group: str, channel: str, extra: Any = None) -> bool:
        """Add (or refresh) a membership: True if Redis took it. A failure for this
        instance's own channel is remembered (False) and announced again once Redis
        answers. `extra` (people.py's Join) rides in the same round trip and gets
        its result."""
        box, token = route(channel)
        now = self._presence.join(group, box, token, now_ms())
        ttl = self.rules.group_expiry_ms
        procs = group_key(self.prefix, group)
        tagged = [
            (group_tag(group), command("ZADD", procs, now, box)),
            (group_tag(group), command("PEXPIRE", procs, ttl)),
        ]
        base = box_base(self.prefix, box)
        if token is not None:
            members = f"{base}m:{group}"
            tagged += [
                (box, command("ZADD", members, now, token)),
                (box, command("PEXPIRE", members, ttl)),
            ]
        tagged += self._capacity_note(channel, box, token, ttl)
        if extra is not None:
            tagged.append(extra.tagged)
        try:
            results = await self._connections.execute(tagged)
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            if box != self._box:
                if token is None:
                    self._presence.forget_plain(group, box)
                raise MemberUnreachable(
                    channel, f"Redis did not take it: {exc!r}"
                ) from exc
            self._presence.dirty = True  # the heartbeat announces it again
            return False
        if extra is not None:
            extra.result = results[-1]
        return True

    async def discard(self, group: str, channel: str, extra: Any = None) -> bool:
        """Remove a membership; False if Redis did not take it (the heartbeat
        retries it: see presence.py). `extra` as for `add`."""
        member = (group, *route(channel))
        at = self._presence.leave(member)
        steps = leave_steps(
            self.prefix, member, at, False, self._connections.one_server
        )
        first = steps[:1] if extra is None else [*steps[:1], extra.tagged]
        try:
            left, *rest = await self._connections.execute(first)
            if extra is not None:
                extra.result = rest[0]
            if left == 0 and len(steps) > 1:
                await self._connections.execute(steps[1:])
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            return False
        self._presence.left(member, at)
        return True

    async def send(
        self,
        group: str,
        payload: bytes,
        skip: list[str],
        confirm: Request | None = None,
        append: "Append | None" = None,
    ) -> SendResult:
        """Store `payload` for every member but the `skip`ped ones; full members
        and members of gone processes are counted failures. With `confirm`, a
        member counts as sent only once its process said it handed it on. With
        `append` (a history group), the same step gives it its offset and stores
        it (history.py). Never raises for Redis errors: they are a failure naming
        the group."""
        data = self._seal.seal(payload)
        mark = confirm.mark if confirm else ""
        try:
            if self._connections.one_server:
                sent, errors, stored = await self._send_one_server(
                    group, data, skip, mark, append
                )
            else:
                sent, errors, stored = await self._send_sharded(
                    group, data, skip, mark, append
                )
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc, failed_send=True)
            reason = f"Redis at {self._host_of(group)} failed: {exc!r}"
            return SendResult.of(0, [MemberUnreachable(group, reason)])
        if confirm is not None and stored:
            unconfirmed = await collect(self._connections, confirm, stored)
            sent -= len(unconfirmed)
            errors += unconfirmed
        return SendResult.of(sent, errors)

    async def members(self, group: str) -> set[str]:
        """The members of `group` now: joined within `group_expiry`, in a process
        that is alive (its heartbeat is at most `presence_timeout` old). Raises
        `MemberUnreachable` (naming the group) when Redis does not answer."""
        try:
            return await read_members(
                self._connections, self.prefix, group, self._cutoff()
            )
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            reason = f"Redis at {self._host_of(group)} failed: {exc!r}"
            raise MemberUnreachable(group, reason) from exc

    def _host_of(self, group: str) -> str:
        return self._connections.host_of(group_tag(group))

    # Internals

    async def _send_one_server(
        self, group: str, data: bytes, skip: list[str], mark: str, append: Any
    ) -> Sent:
        procs = group_key(self.prefix, group)
        args = [self.prefix, group, *self._delivery_args(data, mark), *skip, now_ms()]
        lua = GROUP_SEND
        if append is not None:
            lua, args = append.one_server(args)
        (flat,) = await self._connections.execute(
            [(group_tag(group), script(lua, [procs], args))]
        )
        errors: list[BaseException] = []
        stored: dict[str, list[str]] = {}
        for i in range(1, len(flat), 3):
            box, code, token = (flat[i + j].decode() for j in range(3))
            if box == "#":
                append.got(token, int(code))
            elif code == "c":
                stored[box] = token.split()
            else:
                errors.append(self._failure(box, code, token))
        return flat[0], errors, stored

    async def _send_sharded(
        self, group: str, data: bytes, skip: list[str], mark: str, append: Any
    ) -> Sent:
        procs = group_key(self.prefix, group)
        gtag = group_tag(group)
        lua, args = GROUP_BOXES, [self._cutoff()]
        if append is not None:
            lua, args = append.sharded(args, data)
        (boxes,) = await self._connections.execute([(gtag, script(lua, [procs], args))])
        if append is not None:
            boxes, mark = append.took(boxes), append.mark + mark
        args = self._delivery_args(data, mark)
        tagged = [self._delivery(box.decode(), group, args, skip) for box in boxes]
        tagged = [t for t in tagged if t is not None]
        results = await self._connections.execute_partial(tagged)
        sent, errors, purge = 0, [], []
        stored: dict[str, list[str]] = {}
        for (box, _), result in zip(tagged, results, strict=True):
            if isinstance(result, Exception):
                errors += self._unreachable(box, group, skip, result)
            elif box.startswith("c."):
                sent += result
                if not result:
                    errors.append(self._failure(box, "f", ""))
            else:
                sent += result[0]
                code = result[1].decode()
                errors += [self._failure(box, code, t.decode()) for t in result[3:]]
                if mark and result[0]:
                    stored[box] = result[2].decode().split()
                if code != "f":
                    purge.append(box)
        if purge:
            await self._connections.execute([(gtag, command("ZREM", procs, *purge))])
        return sent, errors, stored

    def _unreachable(
        self, box: str, group: str, skip: list[str], exc: Exception
    ) -> list[Exception]:
        """The failures of a box whose host failed: one per member where they are
        known (this instance's own), else one naming the box."""
        reason = f"Redis at {self._connections.host_of(box)} failed: {exc!r}"
        if box != self._box:
            return [MemberUnreachable(channel_name(box, None), reason)]
        cutoff, skipped = self._cutoff(), set(skip)
        return [
            MemberUnreachable(channel_name(box, token), reason)
            for token, joined in self._presence.members_of(group)
            if joined >= cutoff and f"{box} {token}" not in skipped
        ]

    def _delivery(self, box: str, group: str, args: list[Any], skip: list[str]) -> Any:
        base = box_base(self.prefix, box)
        cutoff, cap, usecaps, head, payload, ttl, cttl = args
        if box.startswith("c."):
            if box in skip:
                return None
            args = [base, cap, usecaps, now_ms(), head, payload, ttl]
            return (box, script(DELIVER_PLAIN, [base + "q"], args))
        args = [base, group, cutoff, cap, usecaps, head, payload, ttl, cttl, *skip]
        return (box, script(DELIVER_PROC, [base + "q"], args))

    def _delivery_args(self, data: bytes, mark: str) -> list[Any]:
        """Arguments every delivery script takes; the head is the start of the
        stored item: its deadline, and the confirmation mark if any."""
        rules = self.rules
        return [
            self._cutoff(),
            rules.capacity,
            1 if rules.per_channel else 0,
            f"{now_ms() + rules.expiry_ms}\n{mark}",
            data,
            rules.expiry_ms,
            rules.counts_ttl_ms,
        ]

    def _failure(self, box: str, code: str, token: str) -> Exception:
        name = channel_name(box, token or None)
        if code == "g":
            return MemberUnreachable(name, GONE)
        return ChannelFull(name, self.rules.capacity_of(name))

    def local_sessions(self, group: str) -> tuple[list[str], list[Session]]:
        """This instance's members of `group` that are registered sessions: the
        sender calls them itself (so their failures count) and the script skips
        them. A connected session stays a member past `group_expiry`."""
        if not len(self._sessions):
            return [], []
        skip, calls = [], []
        for token, _joined in self._presence.members_of(group):
            session = self._sessions.get(channel_name(self._box, token))
            if session is not None:
                skip.append(f"{self._box} {token}")
                calls.append(session)
        return skip, calls

    def _capacity_note(
        self, channel: str, box: str, token: str | None, ttl: int
    ) -> list[Any]:
        """Store a member's capacity where it differs from the default, so group
        scripts (which cannot match glob patterns) apply `channel_capacity`."""
        if not self.rules.per_channel:
            return []
        capacity = self.rules.capacity_of(channel)
        base = box_base(self.prefix, box)
        if token is None:
            return [(box, command("SET", base + "c", capacity, "PX", ttl))]
        return [(box, command("HSET", base + "c", token, capacity))]

    async def leave_all(self, channel: str) -> None:
        """Remove one of this instance's channels from every group it is in."""
        _, token = route(channel)
        groups = self._presence.groups_of(token)
        if groups:
            logger.warning(
                "channel %s let a message expire unread: it leaves %s", channel, groups
            )
        for group in groups:
            await self.discard(group, channel)

    def _cutoff(self) -> int:
        return now_ms() - self.rules.group_expiry_ms
