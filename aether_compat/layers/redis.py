"""RedisChannelLayer: the aether_compat layer for several processes and servers,
a drop-in for channels_redis' CONFIG with true counts and exact presence.

Keys: redis_keys.py. Scripts: redis_scripts.py. Each send, group_send and
group_add is one round trip; each received message one blocking pop. Redis errors
stop at this module's edge: receive() retries with backoff, sends report them.
"""

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from re import Pattern
from typing import Any

from redis.exceptions import RedisError

from ..errors import ChannelFull, MemberUnreachable
from . import codec
from .base import call_session
from .redis_commands import run_batch, script
from .redis_connections import Connections
from .redis_groups import GONE, GroupOps
from .redis_hosts import BLOCK_SECONDS, HostSpec, parse_hosts
from .redis_inbox import Inbox, RedisLayerStats, format_acks
from .redis_keys import Route, box_base, decode_item, route, scan_pattern
from .redis_presence import Presence
from .redis_pump import backoff, raise_if_cancelling
from .redis_scripts import SEND_PLAIN, SEND_PROC, TAKE_PLAIN
from .redis_settings import check_settings, crypter

logger = logging.getLogger("aether_compat.layers.redis")


class RedisChannelLayer(GroupOps):
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
        on_disconnect: Any = None,
        on_reconnect: Any = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        check_settings(
            prefix, serializer_format, random_prefix_length, presence_timeout
        )
        self.prefix = prefix
        self.presence_timeout = presence_timeout
        self.hosts = parse_hosts(hosts)
        self._crypter = crypter(symmetric_encryption_keys)
        self._expiry_ms = int(expiry * 1000)
        self._counts_ttl_ms = self._expiry_ms + 60_000
        self.client_id = secrets.token_hex(6)
        self._box = "p." + self.client_id
        self._base = box_base(prefix, self._box)
        self._names = itertools.count(1)
        self._presence = Presence(prefix, self._box, presence_timeout, group_expiry)
        self._connections = Connections(self.hosts, self._stop_tasks_on)
        self.stats = RedisLayerStats()
        self._inbox = Inbox(
            stats=self.stats,
            connections=self._connections,
            presence=self._presence,
            sessions=self.sessions,
            open_payload=self._open,
            on_error=self._count_error,
            on_unread=self._leave_all_groups,
        )
        self._announced = False
        self._routes: dict[str, Route] = {}

    # Channels API: direct messages

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` on `channel`. Raises `ChannelFull` at capacity and
        `MemberUnreachable` when its process is gone or Redis does not answer."""
        self.require_valid_channel_name(channel)
        payload = codec.encode(message)
        sender = self.sessions.get(channel)
        if sender is not None:
            await call_session(channel, sender, payload)
            return
        box, token = route(channel)
        capacity = self._capacity(channel)
        now = _now_ms()
        acks: dict[str, int] = {}
        data = self._seal(payload)
        base = box_base(self.prefix, box)
        if token is None:
            args = [base, capacity, now, now + self._expiry_ms, data, self._expiry_ms]
            tagged = [(box, script(SEND_PLAIN, [base + "q"], args))]
        else:
            args = [base, token, capacity, now + self._expiry_ms, data]
            args += [self._expiry_ms, self._counts_ttl_ms]
            if box == self._box:  # our own acks first, so a freed slot is seen
                acks = self._inbox.local.drain_acks()
                args.append(format_acks(acks))
            tagged = [(box, script(SEND_PROC, [base + "q"], args))]
        try:
            result = (await self._connections.execute(tagged))[-1]
        except (RedisError, OSError) as exc:
            if acks:
                self._inbox.restore_acks(acks)
            self._count_error(exc, failed_send=True)
            raise MemberUnreachable(channel, f"Redis did not take it: {exc!r}") from exc
        if result == 0:
            raise ChannelFull(channel, capacity)
        if result == -1:
            self.stats.failed_sends += 1
            raise MemberUnreachable(channel, GONE)

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
            payload = local.take(channel, int(time.time() * 1000))
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
            except (RedisError, OSError) as exc:  # the heartbeat announces it later
                self._count_error(exc)
        self._inbox.ensure_running()
        return f"{prefix}.{self.client_id}!{next(self._names):x}"

    # flush and close

    async def flush(self) -> None:
        """Delete every key of this prefix (SCAN + UNLINK, never KEYS) and forget
        local state. Meant for tests: other processes re-announce their members."""
        await self._stop_tasks_on(asyncio.get_running_loop())  # no re-announcing
        self._presence.forget_all()
        self._inbox.local.clear()
        pattern = scan_pattern(self.prefix)
        for client in self._connections.all_command_clients():
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await _unlink(client, batch)
                    batch = []
            await _unlink(client, batch)
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
                    return codec.decode(self._open(decode_item(item)[2]))
                client = self._connections.blocking_client(box)
                await client.execute_command(
                    "BLMOVE", queue, queue, "LEFT", "LEFT", BLOCK_SECONDS
                )
                failures = 0
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                self._count_error(exc)
                failures += 1
                await asyncio.sleep(backoff(failures))

    async def _take_plain(self, box: str, queue: str) -> bytes | None:
        """Pop one message; if the receiver is cancelled meanwhile, the message goes
        back to the head of the list instead of being lost."""
        client = self._connections.command_client(box)
        take = script(TAKE_PLAIN, [queue], [_now_ms()])
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

    def _open(self, data: bytes) -> bytes | None:
        if self._crypter is None:
            return data
        try:
            return self._crypter.decrypt(data)
        except Exception as exc:  # a key mismatch between processes: say so
            logger.error(
                "cannot decrypt a message (symmetric_encryption_keys?): %r", exc
            )
            return None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _unlink(client: Any, keys: list[bytes]) -> None:
    if keys:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("UNLINK", key)
        await pipe.execute()
