"""Redis Cluster: three private masters on free ports. Every key carries its box or
group in a hash tag, so each script stays in one slot: send, receive, group_send and
presence work across the cluster."""

import asyncio

import pytest

from aether_compat import SendResult
from aether_compat.layers import RedisChannelLayer
from tests.support.redis_servers import redis_cluster

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster():
    with redis_cluster(3) as servers:
        yield servers


def cluster_layer(servers, **config):
    hosts = [{"address": servers[0].url, "cluster": True}]
    return RedisChannelLayer(hosts=hosts, prefix="cl", **config)


async def receive(layer, channel, within=5):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def test_send_receive_groups_and_presence_on_a_cluster(cluster):
    a, b = cluster_layer(cluster), cluster_layer(cluster)
    try:
        mine = [await a.new_channel() for _ in range(3)]
        theirs = [await b.new_channel() for _ in range(3)]
        for index, channel in enumerate(mine + theirs):
            await a.group_add(f"room:{index % 2}", channel)
            await a.send(channel, {"type": "direct", "i": index})
            await a.send(f"plain-{index}", {"type": "plain", "i": index})
        for index, channel in enumerate(mine + theirs):
            owner = a if channel in mine else b
            assert await receive(owner, channel) == {"type": "direct", "i": index}
            assert await receive(b, f"plain-{index}") == {"type": "plain", "i": index}
        evens = {c for i, c in enumerate(mine + theirs) if i % 2 == 0}
        assert await b.group_members("room:0") == evens
        assert await b.group_send("room:0", {"type": "g"}) == SendResult(3, 0)
        for channel in evens:
            owner = a if channel in mine else b
            assert await receive(owner, channel) == {"type": "g"}
        keys = [k for s in cluster for k in s.client().keys("cl:*")]
        assert len({cluster_slot(k) for k in keys}) > 1  # spread over slots
    finally:
        for layer in (a, b):
            await layer.close()
        await a.flush()
        await a.close()


async def test_dead_process_leaves_cluster_groups(cluster):
    a, b = cluster_layer(cluster), cluster_layer(cluster, presence_timeout=1)
    try:
        survivor, lost = await a.new_channel(), await b.new_channel()
        await a.group_add("room:p", survivor)
        await b.group_add("room:p", lost)
        await asyncio.wrap_future(b._beat.stop())  # as a crash: no beat, no leaving
        for _ in range(40):  # presence expiry is the clock under test
            if await a.group_members("room:p") == {survivor}:
                break
            await asyncio.sleep(0.1)
        result = await a.group_send("room:p", {"type": "x"})
        assert (result.sent_count, result.failed_count) == (1, 1)
        assert await a.group_send("room:p", {"type": "x"}) == SendResult(1, 0)
        c = cluster_layer(cluster)
        leaving = await c.new_channel()
        await c.group_add("room:p", leaving)
        assert await a.group_members("room:p") == {survivor, leaving}
        await c.close()  # a closed layer leaves at once
        assert await a.group_members("room:p") == {survivor}
    finally:
        await b.close()
        await a.flush()
        await a.close()


def cluster_slot(key: bytes) -> int:
    from redis.crc import key_slot

    return key_slot(key)
