"""Callers that give every call a fresh event loop (`async_to_sync` from a plain
thread, `asyncio.run` per task as Celery-style workers do) must not leak Redis
connections: each loop's clients close when that loop shuts down."""

import asyncio
import os
import uuid
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync

from aether_compat.layers import RedisChannelLayer
from aether_compat.results import SendResult
from tests.support.layers import REDIS_URL

pytestmark = pytest.mark.redis

CALLS = 30


def open_sockets_to(port: int) -> int:
    """Established TCP connections of this process to `port` on loopback."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                    count += 1
    return count


def _layer() -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[REDIS_URL], prefix=f"test-{uuid.uuid4().hex[:12]}")


async def _round_trip(layer: RedisChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("loops", channel)
    await layer.group_send("loops", {"type": "hello"})
    assert (await layer.receive(channel))["type"] == "hello"
    await layer.group_discard("loops", channel)


def test_async_to_sync_per_call_leaks_no_connections():
    """30 calls, each on the fresh loop async_to_sync makes: the sockets they
    opened are closed again, not left to the garbage collector."""
    port = urlsplit(REDIS_URL).port or 6379
    layer = _layer()
    before = open_sockets_to(port)
    for _ in range(CALLS):
        async_to_sync(_round_trip)(layer)
    assert open_sockets_to(port) <= before + 2


def test_asyncio_run_per_task_leaks_no_connections():
    """The Celery-style worker: `asyncio.run` per task, with the pump and the
    heartbeat started on each loop and stopped with it."""
    port = urlsplit(REDIS_URL).port or 6379
    layer = _layer()
    before = open_sockets_to(port)
    for _ in range(CALLS):
        asyncio.run(_round_trip(layer))
    assert open_sockets_to(port) <= before + 2
    asyncio.run(layer.flush())


def named_connections(name: str) -> int:
    """Connections Redis has open under the client name `name` (CLIENT LIST)."""
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        return sum(1 for entry in client.client_list() if entry.get("name") == name)


def test_a_thousand_sync_broadcasts_leave_no_connections_and_log_nothing(caplog):
    """Sync callers as Django apps have them: async_to_sync from a thread pool and
    asyncio.run per task (Celery-style), 500 broadcasts each. No error is logged,
    and the connections Redis sees under the layer's name come back down."""
    from concurrent.futures import ThreadPoolExecutor

    from aether_compat.facade import ChannelsFacade

    layer = RedisChannelLayer(
        hosts=[REDIS_URL], prefix=f"test-{uuid.uuid4().hex[:12]}", capacity=1000
    )
    facade = ChannelsFacade()
    facade.configure(layer)
    group = facade.group("room:sync")
    asyncio.run(layer.group_add("room:sync", "some.channel"))
    before = named_connections(layer.connection_name)
    caplog.set_level("WARNING")

    def from_pool(_: int) -> SendResult:
        return async_to_sync(group.broadcast)("hi")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(from_pool, range(500)))
    results += [asyncio.run(group.broadcast("hi")) for _ in range(500)]

    assert sum(results, SendResult()) == SendResult(1000, 0)

    async def named_while_open() -> int:
        await group.broadcast("hi")
        return named_connections(layer.connection_name)

    assert asyncio.run(named_while_open()) > before  # the name is really set
    assert named_connections(layer.connection_name) <= before + 2
    assert [r.getMessage() for r in caplog.records if r.levelname != "INFO"] == []
    asyncio.run(layer.flush())
