"""The redis-py 8 trap (CONTRACT.md 35): with socket_timeout=5, channels_redis'
idle receive() raises TimeoutError after ~5 s. Ours waits as long as it takes.

Slow on purpose: it idles for 35 s (the one long test of the Redis suite)."""

import asyncio
import uuid

import pytest

from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(90)
async def test_idle_receive_for_35_seconds_never_raises():
    """Process and plain channels, with redis-py's default socket_timeout spelled out
    in the host dict, idle for 35 s, then still receive."""
    hosts = [{"address": REDIS_URL, "socket_timeout": 5}]
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    layer = RedisChannelLayer(hosts=hosts, prefix=prefix)
    sender = RedisChannelLayer(hosts=hosts, prefix=prefix)
    try:
        channel = await layer.new_channel()
        waiting = [
            asyncio.create_task(layer.receive(channel)),
            asyncio.create_task(layer.receive("idle-plain")),
        ]
        done, _ = await asyncio.wait(waiting, timeout=35)
        assert not done, [task.exception() for task in done]
        await sender.send(channel, {"type": "finally"})
        await sender.send("idle-plain", {"type": "finally"})
        async with asyncio.timeout(5):
            assert await asyncio.gather(*waiting) == [{"type": "finally"}] * 2
        assert layer.stats.redis_errors == 0
    finally:
        for each in (layer, sender):
            await each.flush()
            await each.close()
