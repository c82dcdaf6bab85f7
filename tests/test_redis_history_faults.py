"""Group history where Redis is more than one plain server or goes away: offset
order on a three-node Cluster and on two sharded hosts with concurrent senders,
and a new epoch when Redis restarts empty."""

import asyncio
import contextlib

import pytest

from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from testing_support.redis_process import RedisProcess
from tests.support.redis_servers import redis_cluster

pytestmark = [pytest.mark.redis, pytest.mark.faults]

OPTIONS = {"room:*": {"history_size": 1000, "history_ttl": 300}}


@pytest.fixture(scope="module")
def cluster():
    with redis_cluster(3) as servers:
        yield servers


@pytest.fixture
def server():
    process = RedisProcess().start()
    yield process
    process.stop()


async def receive(layer, channel, within=10.0):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def concurrent_order(make) -> None:
    """Four senders (two instances, two tasks each) broadcast at once to members
    in two other instances: a queue channel and a session each. Every member gets
    every offset once, in order."""
    senders = [make(), make()]
    receivers = [make(), make()]
    sessions: dict[str, list[int]] = {}
    all_in: dict[str, asyncio.Event] = {}
    total = 200
    queues = []
    for layer in receivers:
        channel = await layer.new_channel()
        queues.append((layer, channel))
        session = await layer.new_channel()
        seen = sessions[session] = []
        done = all_in[session] = asyncio.Event()

        async def sender(message, seen=seen, done=done):
            seen.append(message["offset"])
            if len(seen) == total:
                done.set()

        await layer.register_session(session, sender)
        for member in (channel, session):
            await layer.group_add("room:o", member)

    async def burst(layer, name):
        for i in range(total // 4):
            await layer.group_send("room:o", {"type": "m", "who": name, "i": i})

    await asyncio.gather(
        *(burst(s, f"{n}{t}") for n, s in enumerate(senders) for t in "ab")
    )
    for layer, channel in queues:
        offsets = [(await receive(layer, channel))["offset"] for _ in range(total)]
        assert offsets == list(range(1, total + 1))
    async with asyncio.timeout(10):
        for done in all_in.values():
            await done.wait()
    for seen in sessions.values():
        assert seen == list(range(1, total + 1))
    history = await receivers[0].group_history("room:o")
    assert [m["offset"] for m in history.messages] == list(range(1, total + 1))


async def test_offset_order_on_a_three_node_cluster(cluster):
    made = []

    def make():
        hosts = [{"address": cluster[0].url, "cluster": True}]
        layer = RedisChannelLayer(
            hosts=hosts, prefix="hist", group_options=OPTIONS, capacity=1000
        )
        made.append(layer)
        return layer

    try:
        await concurrent_order(make)
    finally:
        await made[0].flush()
        for layer in made:
            await layer.close()


async def test_offset_order_on_two_sharded_hosts():
    first, second = RedisProcess().start(), RedisProcess().start()
    made = []

    def make():
        hosts = [first.url, second.url]
        layer = RedisChannelLayer(
            hosts=hosts, prefix="hist", group_options=OPTIONS, capacity=1000
        )
        made.append(layer)
        return layer

    try:
        await concurrent_order(make)
    finally:
        for layer in made:
            await layer.close()
        first.stop()
        second.stop()


async def test_redis_restarted_empty_starts_a_new_epoch(server):
    layer = RedisChannelLayer(
        hosts=[server.url], prefix="t", group_options=OPTIONS, presence_timeout=1
    )
    try:
        channel = await layer.new_channel()
        await layer.group_add("room:r", channel)
        for i in range(3):
            await layer.group_send("room:r", {"type": "m", "i": i})
        seen = [await receive(layer, channel) for _ in range(3)]
        before = (await layer.group_history("room:r")).position
        assert before.offset == 3
        server.kill()  # no persistence: Redis comes back empty
        server.start()
        for _ in range(100):  # the heartbeat announces the membership again
            with contextlib.suppress(MemberUnreachable):  # a stale connection
                if await layer.group_members("room:r") == {channel}:
                    break
            await asyncio.sleep(0.1)
        result = await layer.group_send("room:r", {"type": "m", "i": 3})
        assert result.sent_count == 1
        after = await receive(layer, channel)
        assert after["epoch"] != seen[-1]["epoch"]
        assert after["offset"] == 1
        resumed = await layer.group_history("room:r", since=before)
        assert (resumed.recovered, resumed.messages) == (False, [])
        assert resumed.position == (after["epoch"], 1)
    finally:
        await layer.close()
