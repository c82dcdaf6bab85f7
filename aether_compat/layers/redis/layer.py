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
from collections.abc import Mapping, Sequence
from re import Pattern
from typing import Any

from ...errors import ChannelFull, MemberUnreachable
from ...results import SendResult
from .. import codec
from ..base import AetherLayer
from .config import BLOCK_SECONDS, HostSpec, Rules, Seal, check_settings, parse_hosts
from .confirm import Request
from .connections import Connections, run_batch, script
from .groups import GONE, Groups
from .inbox import Inbox, format_acks
from .keys import Route, box_base, decode_item, route, scan_pattern
from .presence import Presence
from .scripts import SEND_PLAIN, SEND_PROC, TAKE_PLAIN
from .util import (
    REDIS_FAILURES,
    Parts,
    RedisLayerStats,
    backoff,
    now_ms,
    raise_if_cancelling,
)


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
        on_disconnect: Any = None,
        on_reconnect: Any = None,
    ) -> None:
        super().__init__(
            expiry, group_expiry, capacity, channel_capacity, delivery_timeout
        )
        check_settings(
            prefix, serializer_format, random_prefix_length, presence_timeout
        )
        self.prefix = prefix
        self.presence_timeout = presence_timeout
        self.hosts = parse_hosts(hosts)
        self.client_id = secrets.token_hex(6)
        self.stats = RedisLayerStats()
        self._box = "p." + self.client_id
        self._names = itertools.count(1)
        self._announced = False
        self._routes: dict[str, Route] = {}
        self._seal = Seal(symmetric_encryption_keys)
        self._presence = Presence(prefix, self._box, presence_timeout, group_expiry)
        self._connections = Connections(self.hosts, self._stop_tasks_on)
        self._assemble()

    def _assemble(self) -> None:
        """Build the groups and the inbox over the parts they share."""
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

    # Channels API: direct messages

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` on `channel`. Raises `ChannelFull` at capacity and
        `MemberUnreachable` when its process is gone or Redis does not answer."""
        self.require_valid_channel_name(channel)
        payload = codec.encode(message)
        session = self.sessions.get(channel)
        if session is not None:
            await self.sessions.send(session, payload)
            return
        box, token = route(channel)
        capacity = self._capacity(channel)
        acks: dict[str, int] = {}
        if token is not None and box == self._box:
            acks = self._inbox.local.drain_acks()  # ours first: a freed slot shows
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
            known = self._routes[channel] = route(channel)
        box, token = known
        if token is None:
            return await self._receive_plain(box)
        if box != self._box:
            raise ValueError(
                f"channel {channel!r} belongs to another layer instance: only the "
                "instance whose new_channel() made it can receive on it"
            )
        local = self._inbox.local
        while True:
            payload = local.take(channel, now_ms())
            if payload is not None or local.acks:  # expired ones were dropped
                self._inbox.flush_acks_soon()
            if payload is not None:
                return codec.decode(payload)
            self._inbox.ensure_running()
            await local.wait(channel)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A name of this instance's inbox; never repeats, even after `random.seed`."""
        if not self._announced:
            try:
                await self._connections.execute(self._presence.alive())
                self._announced = True
            except REDIS_FAILURES as exc:  # the heartbeat announces it later
                self.stats.redis_error(exc)
        self._inbox.ensure_running()
        return f"{prefix}.{self.client_id}!{next(self._names):x}"

    # Groups

    async def group_add(self, group: str, channel: str) -> None:
        """Add (or refresh) a membership; see `Groups.add`."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._groups.add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove a membership; absent members are fine."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._groups.discard(group, channel)

    async def group_send(
        self, group: str, message: dict[str, Any], *, confirm: bool | float = False
    ) -> SendResult:
        """Deliver to every member; full members and members of gone processes are
        counted failures, each with its exception. Never raises for Redis errors.

        With `confirm` (True, or a deadline in seconds), a member in another
        process counts as sent only once that process said it handed the message
        on; members of a process that stays silent past the deadline fail."""
        self.require_valid_group_name(group)
        payload = codec.encode(message)
        window = self.confirm_window(confirm)
        skip, session_calls = self._groups.local_sessions(group)
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

    # flush and close

    async def flush(self) -> None:
        """Delete every key of this prefix (SCAN + UNLINK, never KEYS) and forget
        local state. Meant for tests: other processes re-announce their members."""
        await self._stop_tasks_on(asyncio.get_running_loop())  # no re-announcing
        self._presence.forget_all()
        self._inbox.local.clear()
        await self._connections.delete_matching(scan_pattern(self.prefix))
        if self._announced:
            await self._connections.execute(self._presence.alive())

    async def close(self) -> None:
        """Stop this instance's tasks and close the current loop's connections."""
        await self._stop_tasks_on(asyncio.get_running_loop())
        self._inbox.stop_elsewhere()
        await self._connections.close_current()

    async def close_pools(self) -> None:
        """channels_redis' name for `close()`."""
        await self.close()

    # Internals: plain channels (their own list in Redis, no local buffer)

    async def _receive_plain(self, box: str) -> dict[str, Any]:
        queue = box_base(self.prefix, box) + "q"
        failures = 0
        while True:
            raise_if_cancelling()
            try:
                item = await self._take_plain(box, queue)
                if item is not None:
                    return codec.decode(self._seal.open(decode_item(item)[2]))
                client = self._connections.blocking_client(box)
                await client.execute_command(
                    "BLMOVE", queue, queue, "LEFT", "LEFT", BLOCK_SECONDS
                )
                failures = 0
            except REDIS_FAILURES as exc:
                raise_if_cancelling()
                self.stats.redis_error(exc)
                failures += 1
                await asyncio.sleep(backoff(failures))

    async def _take_plain(self, box: str, queue: str) -> bytes | None:
        """Pop one message; if the receiver is cancelled meanwhile, the message goes
        back to the head of the list instead of being lost."""
        client = self._connections.command_client(box)
        take = script(TAKE_PLAIN, [queue], [now_ms()])
        task = asyncio.ensure_future(run_batch(client, [take]))
        try:
            (item,) = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._put_back(client, queue, done))
            raise
        return item

    def _put_back(self, client: Any, queue: str, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None or done.result()[0] is None:
            return
        self._inbox.own(client.lpush(queue, done.result()[0]))

    # Internals: the rest

    async def _stop_tasks_on(self, loop: asyncio.AbstractEventLoop) -> None:
        await self._inbox.stop(loop)

    def _capacity(self, channel: str) -> int:
        return self.get_capacity(channel) if self.channel_capacity else self.capacity
