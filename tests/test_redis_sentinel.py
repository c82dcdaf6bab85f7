"""Sentinel: a private master, replica and sentinel on free ports. The layer finds
the master through the sentinel, and after the master is killed and the replica
promoted, it reconnects: receivers never see an error, sends work again."""

import asyncio
import time

import pytest

from aether_compat import SendResult
from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from tests.support.redis_servers import sentinel_setup
from tests.support.redis_truth import members_are, until

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture
def sentinel():
    with sentinel_setup("aether") as setup:
        yield setup


def sentinel_layer(setup, **config):
    hosts = [
        {
            "sentinels": [("127.0.0.1", setup["sentinel"].port)],
            "master_name": "aether",
            "sentinel_kwargs": {"socket_timeout": 1},
        }
    ]
    return RedisChannelLayer(hosts=hosts, prefix="sn", **config)


async def test_sentinel_failover_is_survived(sentinel):
    owner = sentinel_layer(sentinel, presence_timeout=2)
    sender = sentinel_layer(sentinel)
    try:
        channel = await owner.new_channel()
        await owner.group_add("room:s", channel)
        await sender.send(channel, {"type": "before"})
        async with asyncio.timeout(5):
            assert await owner.receive(channel) == {"type": "before"}
        assert await sender.group_members("room:s") == {channel}
        waiting = asyncio.create_task(owner.receive(channel))

        sentinel["master"].kill()
        started = time.monotonic()
        while True:  # failover takes the sentinel a few seconds
            try:
                result = await sender.group_send("room:s", {"type": "after"})
            except MemberUnreachable:
                result = SendResult()
            if result.sent_count == 1:
                break
            assert time.monotonic() - started < 30, "no failover within 30 s"
            await asyncio.sleep(0.5)
        async with asyncio.timeout(10):
            assert await waiting == {"type": "after"}
        # If the failover outlasted presence_timeout (2 s here) the live key expired
        # on the new master: the owner's next beat announces it again.
        expected = {channel}
        await until(lambda: members_are(sender, expected, "room:s"), 5, "member")
    finally:
        for layer in (owner, sender):
            await layer.close()
