"""RedisChannelLayer: the aether_compat layer for several processes and servers,
a drop-in for channels_redis' CONFIG with true counts and exact presence.

Every public method is here; groups.py does the group work, inbox.py the
background work for this instance's own channels. Each send, group_send and
group_add is one round trip; each received message one blocking pop. Redis errors
stop at the package's edge: receive() retries with backoff, sends report them.
"""

import asyncio
import itertools
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from re import Pattern
from time import time_ns
from typing import Any

from ...errors import ChannelFull, MemberUnreachable
from ...history import POSITION_KEYS, History, check_limit, check_since
from ...presence import Presence as PresenceMap
from ...presence import PresenceStats, check_meta
from ...results import SendResult
from ...sessions import SessionTable
from .. import codec
from ..base import AetherLayer
from ..group_options import NO_OPTIONS, GroupOptions
from ..idempotency import DEFAULT_WINDOW, check_key
from .beat import Beat
from .config import HostSpec, Rules, Seal, check_settings, parse_hosts
from .confirm import Request
from .connections import Connections, script
from .groups import GONE, Groups, skip_entries
from .history import RedisHistory
from .idempotency import claim
from .inbox import Inbox, format_acks
from .keys import box_base, route, scan_pattern
from .lifecycle import Readers, track
from .people import People
from .people_worker import Worker
from .plain import PlainReceiver
from .presence import Presence
from .scripts import SEND_PLAIN, SEND_PROC
from .util import REDIS_FAILURES, Parts, RedisLayerStats, now_ms


class RedisChannelLayer(AetherLayer):
    """A channel layer over Redis: select it in `settings.CHANNEL_LAYERS`."""

    def __init__(
        self,
        *,
        hosts: Sequence[HostSpec] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 12,
        serializer_format: str = "msgpack",
        presence_timeout: float = 10,
        delivery_timeout: float = 2.0,
        group_options: Mapping[str | Pattern[str], Mapping[str, Any]] | None = None,
        on_disconnect: Any = None,
        on_reconnect: Any = None,
    ) -> None:
        super().__init__(
            expiry,
            group_expiry,
            capacity,
            channel_capacity,
            delivery_timeout,
            group_options,
        )
        check_settings(
            prefix, serializer_format, random_prefix_length, presence_timeout
        )
        self.prefix = prefix
        self.presence_timeout = presence_timeout
        self.hosts = parse_hosts(hosts)
        self.stats = RedisLayerStats()
        self._seal = Seal(symmetric_encryption_keys)
        self._readers = Readers()  # plain channels; the inbox tracks its own
        self._checked_at = 0
        self._new_identity()
        track(self)

    def _new_identity(self) -> None:
        """Everything that names this instance in Redis, and the state tied to it."""
        self.client_id = secrets.token_hex(6)
        self._box = "p." + self.client_id
        self._names = itertools.count(1)
        self._announced = False
        # channel -> (box, token, capacity), for receive(): checked once per name
        self._routes: dict[str, tuple[str, str | None, int]] = {}
        self._presence = Presence(
            self.prefix, self._box, self.presence_timeout, self.group_expiry
        )
        self._connections = Connections(
            self.hosts, self._stop_tasks_on, name=f"aether_compat.{self.client_id}"
        )
        self._assemble()

    @property
    def connection_name(self) -> str:
        """The name every Redis connection of this instance carries (CLIENT
        SETNAME), so that `CLIENT LIST` tells which connections it holds."""
        return self._connections.name or ""

    def _after_fork_in_child(self) -> None:
        """A forked child is another process: a new identity, nothing inherited
        (the parent's sessions, buffers, loops and connections are the parent's)."""
        self.sessions = SessionTable(self.sessions.decode, self.sessions.timeout)
        self._readers = Readers()
        self._new_identity()

    def _assemble(self) -> None:
        """Build the groups, the inbox and the heartbeat over the parts they share."""
        self._rules = Rules(
            expiry_ms=int(self.expiry * 1000),
            group_expiry_ms=int(self.group_expiry * 1000),
            capacity=self.capacity,
            capacity_of=self.get_capacity,
            per_channel=bool(self.channel_capacity),
        )
        parts = Parts(
            self.prefix,
            self._rules,
            self._connections,
            self._presence,
            self.sessions,
            self._seal,
            self.stats,
        )
        self._groups = Groups(parts)
        self._inbox = Inbox(parts, self._groups)
        self._history = RedisHistory(parts, self._groups, self._inbox)
        self._plain = PlainReceiver(parts, self._inbox.own)
        worker = self._worker = Worker(self.prefix, self._box, self._connections)
        self._people = People(parts, self._options, self.send, worker)
        worker.people, worker.deliver = self._people, self._send_presence
        self._presence.people = self._people
        self._beat = Beat(
            self.hosts,
            self._presence,
            self._connections.shard,
            self._connections.one_server,
            self._live_check,
            self.stats.redis_error,
            self._connections.name,
        )

    def _live_check(self) -> Callable[[str], bool]:
        """Whether a channel is in use now: received on, or a registered session."""
        since, self._checked_at = self._checked_at, now_ms()
        live = self._readers.snapshot() | self._inbox.local.readers_since(since)
        sessions = self.sessions
        return lambda name: name in live or sessions.get(name) is not None

    # Channels API: direct messages

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` on `channel`. Raises `ChannelFull` at capacity and
        `MemberUnreachable` when its process is gone or Redis does not answer."""
        self.require_valid_channel_name(channel)
        payload = codec.encode(message)
        if (session := self.sessions.get(channel)) is not None:
            return await self.sessions.send(session, payload)
        box, token = route(channel)
        capacity = self._capacity(channel)
        acks: dict[str, int] = {}
        if token is not None and box == self._box:
            acks = self._inbox.drain_acks()  # ours first: a freed slot shows
        command = self._send_command(box, token, capacity, payload, acks)
        try:
            result = (await self._connections.execute([command]))[-1]
        except REDIS_FAILURES as exc:
            if acks:
                self._inbox.restore_acks(acks)
            self.stats.redis_error(exc, failed_send=True)
            raise MemberUnreachable(channel, f"Redis did not take it: {exc!r}") from exc
        if result == 0:
            raise ChannelFull(channel, capacity)
        if result == -1:
            self.stats.failed_sends += 1
            raise MemberUnreachable(channel, GONE)

    def _send_command(
        self,
        box: str,
        token: str | None,
        capacity: int,
        payload: bytes,
        acks: dict[str, int],
    ) -> tuple[str, Any]:
        now, expiry = now_ms(), self._rules.expiry_ms
        data = self._seal.seal(payload)
        base = box_base(self.prefix, box)
        if token is None:
            args = [base, capacity, now, now + expiry, data, expiry]
            return (box, script(SEND_PLAIN, [base + "q"], args))
        args = [base, token, capacity, now + expiry, data, expiry]
        args += [self._rules.counts_ttl_ms, format_acks(acks)]
        return (box, script(SEND_PROC, [base + "q"], args))

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message of `channel`; waits as long as it takes, through Redis
        outages (they are retried, never raised), and is safe to cancel."""
        known = self._routes.get(channel)
        if known is None:
            self.require_valid_channel_name(channel)
            if len(self._routes) >= 100_000:  # names of gone consumers pile up
                self._routes.clear()
            box, token = route(channel)
            known = self._routes[channel] = (box, token, self._capacity(channel))
        box, token, capacity = known
        if token is not None and box != self._box:
            raise ValueError(
                f"channel {channel!r} belongs to another layer instance: only the "
                "instance whose new_channel() made it can receive on it"
            )
        if token is not None:  # the local buffers note who waits and reads
            # The usual case here, in one coroutine and few calls: park on the
            # pump's loop, be handed the item, take it (as `Inbox.take` does).
            inbox = self._inbox
            loop = inbox.running_on
            local = inbox.local
            if loop is not asyncio.get_running_loop():
                return await inbox.take(channel, token, capacity)
            waiter = local.park_empty(channel, loop)
            if waiter is None:  # something is buffered
                return await inbox.take(channel, token, capacity)
            try:
                item = await waiter
            except asyncio.CancelledError:
                local.unpark(channel, waiter)
                raise
            if item is not None and 1 + local.acks.get(token, 0) < capacity:
                taken = local.taken(channel, item, time_ns() // 1_000_000)
                if local.acks:  # an open item's readers ack nothing, but the last
                    inbox.flush_acks_soon()
                if taken is not None:  # as `message_of`, inline
                    shared = item[4]
                    return codec.decode(taken) if shared is None else shared.copy()
                item = None  # it expired
            return await inbox.take(channel, token, capacity, item)
        self._readers.enter(channel)  # a channel received on keeps its groups
        try:
            return await self._plain.receive(box)
        finally:
            self._readers.leave(channel)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A name of this instance's inbox; never repeats, even after `random.seed`."""
        if not self._announced:
            try:
                await self._connections.execute(self._presence.alive())
                self._announced = True
            except REDIS_FAILURES as exc:  # the heartbeat announces it later
                self.stats.redis_error(exc)
        self._beat.ensure()
        self._inbox.ensure_running()
        return f"{prefix}.{self.client_id}!{next(self._names):x}"

    # Groups

    async def group_add(
        self, group: str, channel: str, *, meta: dict[str, Any] | None = None
    ) -> None:
        """Add (or refresh) a membership with its presence metadata (see
        `aether_compat.presence`); see `Groups.add`."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        meta = check_meta(meta)
        self._beat.ensure()  # it announces the membership again if Redis loses it
        options = self._options(group)
        people = self._people.joining(group, channel, meta)
        if options.keeps_history:
            join = lambda: self._groups.add(group, channel, people)  # noqa: E731
            await self._history.add(group, channel, options, join, self.send)
        else:
            await self._groups.add(group, channel, people)
        await people.finish()

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove a membership; absent members are fine. If Redis does not take it,
        the heartbeat retries until it does (it never stays a ghost member)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if self._options(group).keeps_history:
            self._history.forget(group, channel)
        leave = self._people.leaving(group, channel)
        if not await self._groups.discard(group, channel, leave):
            self._beat.poke()
        self._people.left(leave)

    async def group_send(
        self,
        group: str,
        message: dict[str, Any],
        *,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
    ) -> SendResult:
        """Deliver to every member but the `exclude`d channels; full members and
        members of gone processes are counted failures, each with its exception.
        Never raises for Redis errors.

        With `confirm` (True, or a deadline in seconds), a member in another
        process counts as sent only once that process said it handed the message
        on; members of a process that stays silent past the deadline fail."""
        self.require_valid_group_name(group)
        options = self._options(group)
        if options.keeps_history and _has_position(message):  # the layer sets them
            message = {k: v for k, v in message.items() if k not in POSITION_KEYS}
        payload = codec.encode(message)
        window = self.confirm_window(confirm)
        skip, session_calls = self._groups.local_sessions(group)
        excluded: frozenset[str] = frozenset()
        if exclude:
            excluded = self.excluded(exclude)
            skip += skip_entries(excluded)
            session_calls = [s for s in session_calls if s.channel not in excluded]
        if options.keeps_history:
            request = None if window is None else Request.within(self.prefix, window)
            return await self._history.send(
                group, options, payload, skip, session_calls, excluded, request
            )
        if window is None:
            result = await self._groups.send(group, payload, skip)
            if session_calls:
                result += await self.sessions.deliver(session_calls, payload)
            return result
        request = Request.within(self.prefix, window)
        remote, local = await asyncio.gather(
            self._groups.send(group, payload, skip, request),
            self.sessions.deliver(session_calls, payload),
        )
        return remote + local

    async def group_members(self, group: str) -> set[str]:
        """The members of `group` now: joined within `group_expiry`, in a process
        that is alive (heartbeat at most `presence_timeout` old). Raises
        `MemberUnreachable` (naming the group) when Redis does not answer."""
        self.require_valid_group_name(group)
        return await self._groups.members(group)

    async def group_presence(self, group: str) -> PresenceMap:
        """The group's presence across processes (members of live processes; for
        presence-events groups also users whose leave waits in grace). Raises
        `MemberUnreachable` (naming the group) when Redis does not answer."""
        members = await self.group_members(group)
        try:
            return (await self._people.read(group, members))[0]
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            raise MemberUnreachable(group, f"Redis did not answer: {exc!r}") from exc

    async def group_presence_stats(self, group: str) -> PresenceStats:
        """Connections and distinct users of the group, as `group_presence`."""
        members = await self.group_members(group)
        try:
            return await self._people.stats(group, members)
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            raise MemberUnreachable(group, f"Redis did not answer: {exc!r}") from exc

    async def _send_presence(
        self, group: str, message: dict[str, Any], exclude: list[str]
    ) -> SendResult:
        """A presence diff to every member but `exclude`: never into history."""
        payload = codec.encode(message)
        skip, session_calls = self._groups.local_sessions(group)
        if exclude:
            skip += skip_entries(exclude)
            session_calls = [s for s in session_calls if s.channel not in exclude]
        result = await self._groups.send(group, payload, skip)
        if session_calls:
            result += await self.sessions.deliver(session_calls, payload)
        return result

    async def group_names(self) -> list[str]:
        """Every group with members in Redis now (SCAN over the group keys, never
        KEYS; members of dead processes may still name a group for a moment)."""
        return await self._connections.group_names(self.prefix)

    def membership_count(self) -> int:
        """Memberships this instance made (its channels and plain ones it added)."""
        presence = self._presence
        with presence.lock:
            tables = (presence.memberships, presence.plain)
            return sum(len(m) for table in tables for m in table.values())

    async def claim_once(
        self,
        key: str,
        *,
        group: str | None = None,
        channel: str | None = None,
        window: float = DEFAULT_WINDOW,
    ) -> bool:
        """Claim an idempotency key in Redis for every process (see
        idempotency.py): True to send, False for a duplicate."""
        check_key(key)
        return await claim(
            self._connections,
            self.stats,
            self.prefix,
            key,
            window,
            group=group,
            channel=channel,
        )

    async def group_history(
        self, group: str, *, since: Any = None, limit: int | None = None
    ) -> History:
        """The group's position and stored messages (see `aether_compat.history`);
        with `since`, exactly what came after it or nothing (`recovered` False).
        Raises `MemberUnreachable` (naming the group) when Redis does not answer."""
        self.require_valid_group_name(group)
        position, limit = check_since(since), check_limit(limit)
        try:
            return await self._history.read(
                group, self._options(group), position, limit
            )
        except REDIS_FAILURES as exc:
            self.stats.redis_error(exc)
            raise MemberUnreachable(group, f"Redis did not answer: {exc!r}") from exc

    def _options(self, group: str) -> GroupOptions:
        return self.group_options.for_group(group) if self.group_options else NO_OPTIONS

    # flush and close

    async def flush(self) -> None:
        """Delete every key of this prefix (SCAN + UNLINK, never KEYS) and forget
        local state. Meant for tests: other processes re-announce their members."""
        await asyncio.wrap_future(self._beat.stop())  # no re-announcing meanwhile
        await self._stop_tasks_on(asyncio.get_running_loop())
        await self._worker.stop(flush=False)
        self._people.forget_all()
        self._presence.forget_all()
        self._inbox.clear()
        self._history.sequencer.clear()
        await self._connections.delete_matching(scan_pattern(self.prefix))
        if self._announced:
            await self._connections.execute(self._presence.alive())
            self._beat.ensure()

    async def close(self) -> None:
        """Take this instance out of Redis at once (its live key and memberships go,
        so its members leave `group_members` now), stop its tasks and close the
        current loop's connections. Using it again announces it again."""
        await self._worker.stop(flush=True)  # the diffs it still holds go out
        await asyncio.to_thread(self.leave_now)
        await self._stop_tasks_on(asyncio.get_running_loop())
        self._inbox.stop_elsewhere()
        await self._connections.close_current()

    def leave_now(self, timeout: float | None = None) -> None:
        """Blocking: stop the heartbeat and take this instance's live key and
        memberships out of Redis (close, exit and SIGTERM; see lifecycle.py)."""
        self._beat.finish() if timeout is None else self._beat.finish(timeout)
        self._announced = False

    async def close_pools(self) -> None:
        """channels_redis' name for `close()`."""
        await self.close()

    # Internals: the rest

    async def _stop_tasks_on(self, loop: asyncio.AbstractEventLoop) -> None:
        await self._inbox.stop(loop)

    def _capacity(self, channel: str) -> int:
        return self.get_capacity(channel) if self.channel_capacity else self.capacity


def _has_position(message: Any) -> bool:
    return isinstance(message, dict) and ("offset" in message or "epoch" in message)
