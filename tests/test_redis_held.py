"""The held command connection (aether_compat/layers/redis/held.py): the same
results as the pool path, scripts reloaded without running anything twice,
concurrent senders, cancellation and a frozen Redis, and nothing leaked when the
loop's clients close. Real Redis throughout (private servers)."""

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, ResponseError

from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.config import parse_hosts
from aether_compat.layers.redis.connections import (
    Connections,
    command,
    run_batch,
    script,
)
from aether_compat.layers.redis.held import HeldConnection, pack
from aether_compat.layers.redis.scripts import Script
from tests.support.redis_servers import redis_server
from tests.support.redis_truth import until
from tests.test_redis_loops import open_sockets_to

pytestmark = pytest.mark.redis

# A script with a side effect: running it twice would show in the counter.
BUMP = Script("test_bump", "return {redis.call('INCR', KEYS[1]), ARGV[1]}")


async def _no_hook(loop: asyncio.AbstractEventLoop) -> None:
    return None


def _connections(url: str, **options: Any) -> Connections:
    return Connections(parse_hosts([{"address": url, **options}]), _no_hook)


def _held(connections: Connections) -> HeldConnection:
    held = connections._entry()[1][0]
    assert held is not None
    return held


@pytest.fixture
def private() -> Iterator[Any]:
    """A redis-server of the test's own (the shared one may be flushed by others)."""
    with redis_server() as server:
        yield server


def _mixed(prefix: str) -> list[Any]:
    k = f"{prefix}:{{t}}:"
    return [
        command("SET", k + "s", "v"),
        command("GET", k + "s"),
        command("INCR", k + "n"),
        command("HSET", k + "h", "a", 1, "b", 2),
        command("HGETALL", k + "h"),
        command("RPUSH", k + "l", "x", "y"),
        command("LRANGE", k + "l", 0, -1),
        script(BUMP, [k + "c"], ["arg"]),
        command("EXISTS", k + "s", k + "missing"),
        command("GET", k + "missing"),
        script(BUMP, [k + "c"], ["again"]),
        command("DEL", k + "s", k + "n", k + "h", k + "l", k + "c"),
    ]


def test_pack_sends_the_bytes_redis_py_would():
    connection = Connection()
    words = [
        ("EVALSHA", "a" * 40, 2, "k:{t}:q", b"k:{t}:", -7, 1.5, "\u00e9t\u00e9"),
        ("SET", b"x" * 10_000, memoryview(b"view"), 0, ""),
        ("SCRIPT LOAD", "return 1"),
        (b"CONFIG GET", b"maxmemory"),
    ]
    for batch in ([words[0]], words[:2], words):
        assert b"".join(pack(connection, batch)) == b"".join(
            connection.pack_commands(batch)
        )
    for bad in (True, None):
        with pytest.raises(DataError):
            connection.pack_commands([("SET", "k", bad)])
        with pytest.raises(DataError):
            pack(connection, [("SET", "k", bad)])


async def test_results_equal_the_pool_path_for_commands_and_scripts(private):
    connections = _connections(private.url)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    try:
        client = connections.command_client("t")
        await client.script_load(BUMP.source)  # else both re-run it after DEL
        pooled = await run_batch(client, _mixed(prefix + "p"))
        held = await connections.execute([("t", c) for c in _mixed(prefix + "h")])
        assert _held(connections)._connection is not None  # it served the batch
        assert held == pooled
        assert held[4] == {b"a": b"1", b"b": b"2"}  # the client's callbacks apply
        # One command alone, and error replies: in place, the first one raised.
        (one,) = await connections.execute([("t", command("PING"))])
        assert one is True
        k = f"{prefix}:{{t}}:"
        wrong = [
            command("SET", k + "w", "v"),
            command("LPUSH", k + "w", "x"),
            command("GET", k + "w"),
        ]
        partial = await connections.execute_partial([("t", c) for c in wrong])
        assert len(partial) == 3
        assert all(isinstance(r, ResponseError) for r in partial)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await connections.execute([("t", c) for c in wrong])
        # The connection is still in step after the error replies.
        assert await connections.execute([("t", command("GET", k + "w"))]) == [b"v"]
        await connections.execute([("t", command("DEL", k + "w"))])
    finally:
        await connections.close_current()


async def test_a_flushed_script_is_loaded_and_rerun_once(private):
    connections = _connections(private.url)
    try:
        await connections.execute([("t", script(BUMP, ["{t}c"], ["warm"]))])
        await connections.execute([("t", command("SCRIPT", "FLUSH"))])
        batch = [
            ("t", script(BUMP, ["{t}c"], ["a"])),
            ("t", command("INCR", "{t}n")),
            ("t", script(BUMP, ["{t}c"], ["b"])),
        ]
        assert await connections.execute(batch) == [[2, b"a"], 1, [3, b"b"]]
        await connections.execute([("t", command("SCRIPT", "FLUSH"))])
        alone = [("t", script(BUMP, ["{t}c"], ["c"]))]
        assert await connections.execute(alone) == [[4, b"c"]]
        counts = [("t", command("GET", "{t}c")), ("t", command("GET", "{t}n"))]
        assert await connections.execute(counts) == [b"4", b"1"]
    finally:
        await connections.close_current()


async def test_two_hundred_concurrent_sends_all_land_in_order_per_sender(private):
    layer = RedisChannelLayer(
        hosts=[private.url], prefix=f"test-{uuid.uuid4().hex[:12]}", capacity=1000
    )
    senders, each = 20, 10

    async def sender(i: int) -> None:
        for n in range(each):
            await layer.send(f"held.{i}", {"type": "m", "n": n})

    try:
        await asyncio.gather(*(sender(i) for i in range(senders)))
        for i in range(senders):
            got = [(await layer.receive(f"held.{i}"))["n"] for _ in range(each)]
            assert got == list(range(each))
        held = _held(layer._connections)
        pool = held._pool
        assert not held.busy
        assert set(pool._in_use_connections) <= {held._connection}  # no leak
    finally:
        await layer.flush()
        await layer.close()


def _parked(connections: Connections, held: HeldConnection) -> Any:
    """Whether the held connection is mid-command, parked in Redis."""

    async def check() -> tuple[bool, Any]:
        client = connections.command_client("t")
        (info,) = await run_batch(client, [command("INFO", "clients")])
        blocked = int(info["blocked_clients"])
        return held.busy and blocked == 1, (held.busy, blocked)

    return check


async def test_a_command_cancelled_midway_leaves_the_next_one_in_step(private):
    connections = _connections(private.url)
    try:
        await connections.execute([("t", command("SET", "{t}k", "fresh"))])
        held = _held(connections)
        blocked = asyncio.ensure_future(
            connections.execute([("t", command("BLPOP", "{t}list", 0))])
        )
        await until(_parked(connections, held), 5, "the BLPOP parked in Redis")
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert held.free
        assert held._connection is None  # dropped, not reused
        # A reply to the BLPOP would now be read as the next command's.
        client = connections.command_client("t")
        await run_batch(client, [command("RPUSH", "{t}list", "stale")])
        assert await connections.execute([("t", command("GET", "{t}k"))]) == [b"fresh"]
        assert held._connection is not None
        assert await connections.execute([("t", command("PING"))]) == [True]
    finally:
        await connections.close_current()


async def test_a_frozen_redis_fails_sends_in_time_and_they_work_after(private):
    timeout = 0.5
    layer = RedisChannelLayer(
        hosts=[{"address": private.url, "socket_timeout": timeout}],
        prefix=f"test-{uuid.uuid4().hex[:12]}",
    )
    try:
        await layer.send("held.frozen", {"type": "m", "n": 0})
        assert _held(layer._connections)._connection is not None
        private.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with asyncio.timeout(timeout + 4):  # a hang fails the test
                outcomes = await asyncio.gather(
                    layer.send("held.frozen", {"type": "m", "n": 1}),
                    layer.send("held.frozen", {"type": "m", "n": 2}),
                    return_exceptions=True,
                )
            took = time.monotonic() - started
        finally:
            private.process.send_signal(signal.SIGCONT)
        assert all(isinstance(o, MemberUnreachable) for o in outcomes), outcomes
        assert took < timeout + 1.0
        await layer.send("held.frozen", {"type": "m", "n": 3})
        seen = []
        async with asyncio.timeout(5):
            while not seen or seen[-1] != 3:
                seen.append((await layer.receive("held.frozen"))["n"])
        assert seen[0] == 0  # what Redis read before the freeze may land too
    finally:
        await layer.flush()
        await layer.close()


def test_loop_shutdown_closes_the_held_connection(private, caplog):
    """`asyncio.run` per call, one with a command still running at shutdown: no
    socket left open, nothing logged (no destroyed pending task)."""
    connections = _connections(private.url)
    left: list[asyncio.Future[Any]] = []

    async def use(leave_running: bool) -> None:
        await connections.execute([("t", command("INCR", "{t}n"))])
        assert _held(connections)._connection is not None
        if leave_running:  # asyncio.run cancels it, then closes the clients
            left.append(
                asyncio.ensure_future(
                    connections.execute([("t", command("BLPOP", "{t}none", 0))])
                )
            )
            await asyncio.sleep(0)

    for leave_running in (False, True, False, True):
        asyncio.run(use(leave_running))
        assert open_sockets_to(private.port) == 0
    assert [r.getMessage() for r in caplog.records if r.levelname != "INFO"] == []
