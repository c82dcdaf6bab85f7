"""Groups of the Redis layer: membership, counted fan-out and presence.

A group key lists the boxes (processes, plain channels) where the group has members;
each process box lists its own members. So a group_send stores one message per
process, whatever the number of members there, and checks every member's capacity
in the same script. On one server that is one script call; on several hosts or a
Cluster it is one call for the group and one pipeline per host for the boxes.
"""

import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..errors import ChannelFull, MemberUnreachable
from ..results import SendResult
from . import codec
from .base import AetherLayer, call_sessions
from .redis_commands import command, script
from .redis_keys import box_base, channel_name, group_key, group_tag, route
from .redis_scripts import (
    DELIVER_PLAIN,
    DELIVER_PROC,
    GROUP_BOXES,
    GROUP_MEMBERS,
    GROUP_SEND,
    MEMBERS_PROC,
)

logger = logging.getLogger("aether_compat.layers.redis")

GONE = "its process stopped announcing itself (crashed or cut off from Redis)"


class GroupOps(AetherLayer):
    """The group half of RedisChannelLayer; its state is set up there."""

    prefix: str
    stats: Any
    _box: str
    _connections: Any
    _presence: Any
    _crypter: Any
    _expiry_ms: int
    _counts_ttl_ms: int

    async def group_add(self, group: str, channel: str) -> None:
        """Add (or refresh) a membership. A failure for this instance's own channel
        is remembered and announced again once Redis answers."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        box, token = route(channel)
        now = _now_ms()
        ttl = int(self.group_expiry * 1000)
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
        if box == self._box:
            self._presence.join(group, token, now)
        try:
            await self._connections.execute(tagged)
        except (RedisError, OSError) as exc:
            self._count_error(exc)
            if box != self._box:
                raise MemberUnreachable(
                    channel, f"Redis did not take it: {exc!r}"
                ) from exc
            self._presence.dirty = True  # the heartbeat announces it again

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        box, token = route(channel)
        if box == self._box:
            self._presence.leave(group, token)
        try:
            await self._connections.execute([self._discard_command(group, box, token)])
        except (RedisError, OSError) as exc:  # its messages expire; then it leaves
            self._count_error(exc)

    async def group_send(self, group: str, message: dict[str, Any]) -> SendResult:
        """Deliver to every member; full members and members of gone processes are
        counted failures, each with its exception. Never raises for Redis errors."""
        self.require_valid_group_name(group)
        payload = codec.encode(message)
        skip, session_calls = self._local_sessions(group)
        data = self._seal(payload)
        try:
            if self._connections.one_server:
                result = await self._group_send_one_server(group, data, skip)
            else:
                result = await self._group_send_sharded(group, data, skip)
        except (RedisError, OSError) as exc:
            self._count_error(exc, failed_send=True)
            host = self._connections.host_of(group_tag(group))
            reason = f"Redis at {host} failed: {exc!r}"
            result = SendResult.of(0, [MemberUnreachable(group, reason)])
        if session_calls:
            result += await call_sessions(session_calls, payload)
        return result

    async def group_members(self, group: str) -> set[str]:
        """The members of `group` now: joined within `group_expiry`, in a process
        that is alive (its heartbeat is at most `presence_timeout` old). Raises
        `MemberUnreachable` (naming the group) when Redis does not answer."""
        self.require_valid_group_name(group)
        try:
            return await self._members(group)
        except (RedisError, OSError) as exc:
            self._count_error(exc)
            host = self._connections.host_of(group_tag(group))
            raise MemberUnreachable(group, f"Redis at {host} failed: {exc!r}") from exc

    async def _members(self, group: str) -> set[str]:
        cutoff = self._cutoff()
        procs = group_key(self.prefix, group)
        if self._connections.one_server:
            args = [self.prefix, group, cutoff]
            (flat,) = await self._connections.execute(
                [(group_tag(group), script(GROUP_MEMBERS, [procs], args))]
            )
            return _members_from_flat(flat)
        (boxes,) = await self._connections.execute(
            [(group_tag(group), script(GROUP_BOXES, [procs], [cutoff]))]
        )
        boxes = [box.decode() for box in boxes]
        tagged = [
            (
                box,
                script(
                    MEMBERS_PROC,
                    [box_base(self.prefix, box) + "l"],
                    [box_base(self.prefix, box), group, cutoff],
                ),
            )
            for box in boxes
            if box.startswith("p.")
        ]
        found = {channel_name(box, None) for box in boxes if box.startswith("c.")}
        results = await self._connections.execute(tagged)
        for (box, _), tokens in zip(tagged, results, strict=True):
            found.update(channel_name(box, t.decode()) for t in tokens or ())
        return found

    # Internals

    async def _group_send_one_server(
        self, group: str, data: bytes, skip: list[str]
    ) -> SendResult:
        procs = group_key(self.prefix, group)
        args = [self.prefix, group, *self._delivery_args(data), *skip, _now_ms()]
        (flat,) = await self._connections.execute(
            [(group_tag(group), script(GROUP_SEND, [procs], args))]
        )
        failures = [
            (flat[i].decode(), flat[i + 1].decode(), flat[i + 2].decode())
            for i in range(1, len(flat), 3)
        ]
        return SendResult.of(flat[0], [self._failure(*f) for f in failures])

    async def _group_send_sharded(
        self, group: str, data: bytes, skip: list[str]
    ) -> SendResult:
        procs = group_key(self.prefix, group)
        gtag = group_tag(group)
        (boxes,) = await self._connections.execute(
            [(gtag, script(GROUP_BOXES, [procs], [self._cutoff()]))]
        )
        tagged = [self._delivery(box.decode(), group, data, skip) for box in boxes]
        tagged = [t for t in tagged if t is not None]
        results = await self._connections.execute_partial(tagged)
        sent, errors, purge = 0, [], []
        for (box, _), result in zip(tagged, results, strict=True):
            if isinstance(result, Exception):
                errors.append(MemberUnreachable(channel_name(box, None), repr(result)))
            elif box.startswith("c."):
                sent += result
                if not result:
                    errors.append(self._failure(box, "f", ""))
            else:
                sent += result[0]
                code = result[1].decode()
                errors += [self._failure(box, code, t.decode()) for t in result[2:]]
                if code != "f":
                    purge.append(box)
        if purge:
            await self._connections.execute([(gtag, command("ZREM", procs, *purge))])
        return SendResult.of(sent, errors)

    def _delivery(self, box: str, group: str, data: bytes, skip: list[str]) -> Any:
        base = box_base(self.prefix, box)
        cutoff, cap, usecaps, deadline, payload, ttl, cttl = self._delivery_args(data)
        if box.startswith("c."):
            if box in skip:
                return None
            args = [base, cap, usecaps, _now_ms(), deadline, payload, ttl]
            return (box, script(DELIVER_PLAIN, [base + "q"], args))
        args = [base, group, cutoff, cap, usecaps, deadline, payload, ttl, cttl, *skip]
        return (box, script(DELIVER_PROC, [base + "q"], args))

    def _delivery_args(self, data: bytes) -> list[Any]:
        now = _now_ms()
        usecaps = 1 if self.channel_capacity else 0
        expiry = self._expiry_ms
        return [
            self._cutoff(),
            self.capacity,
            usecaps,
            now + expiry,
            data,
            expiry,
            self._counts_ttl_ms,
        ]

    def _failure(self, box: str, code: str, token: str) -> Exception:
        name = channel_name(box, token or None)
        if code == "g":
            return MemberUnreachable(name, GONE)
        return ChannelFull(name, self._capacity(name))

    def _local_sessions(self, group: str) -> tuple[list[str], list[tuple[str, Any]]]:
        """This instance's members of `group` that are registered sessions: the
        sender calls them itself (so their failures count) and the script skips them."""
        if not len(self.sessions):
            return [], []
        cutoff = self._cutoff()
        skip, calls = [], []
        for token, joined in self._presence.memberships.get(group, {}).items():
            name = channel_name(self._box, token)
            sender = self.sessions.get(name)
            if sender is not None and joined >= cutoff:
                skip.append(f"{self._box} {token}")
                calls.append((name, sender))
        return skip, calls

    def _capacity_note(
        self, channel: str, box: str, token: str | None, ttl: int
    ) -> list[Any]:
        """Store a member's capacity where it differs from the default, so group
        scripts (which cannot match glob patterns) apply `channel_capacity`."""
        if not self.channel_capacity:
            return []
        capacity = self._capacity(channel)
        base = box_base(self.prefix, box)
        if token is None:
            return [(box, command("SET", base + "c", capacity, "PX", ttl))]
        return [(box, command("HSET", base + "c", token, capacity))]

    def _discard_command(self, group: str, box: str, token: str | None) -> Any:
        if token is None:
            return (
                group_tag(group),
                command("ZREM", group_key(self.prefix, group), box),
            )
        return (box, command("ZREM", f"{box_base(self.prefix, box)}m:{group}", token))

    async def _leave_all_groups(self, channel: str) -> None:
        _, token = route(channel)
        groups = self._presence.groups_of(token)
        if groups:
            logger.warning(
                "channel %s let a message expire unread: it leaves %s", channel, groups
            )
        for group in groups:
            await self.group_discard(group, channel)

    def _cutoff(self) -> int:
        return _now_ms() - int(self.group_expiry * 1000)

    def _capacity(self, channel: str) -> int:
        return self.get_capacity(channel) if self.channel_capacity else self.capacity

    def _seal(self, payload: bytes) -> bytes:
        return self._crypter.encrypt(payload) if self._crypter else payload

    def _count_error(
        self, exc: BaseException | None, failed_send: bool = False
    ) -> None:
        self.stats.redis_errors += 1
        if failed_send:
            self.stats.failed_sends += 1
        if exc is not None:
            logger.warning("Redis error in the channel layer: %r", exc)


def _members_from_flat(flat: list[Any]) -> set[str]:
    found: set[str] = set()
    index = 0
    while index < len(flat):
        box, count = flat[index].decode(), flat[index + 1]
        tokens = flat[index + 2 : index + 2 + count]
        if box.startswith("c."):
            found.add(channel_name(box, None))
        found.update(channel_name(box, t.decode()) for t in tokens)
        index += 2 + count
    return found


def _now_ms() -> int:
    return int(time.time() * 1000)
