"""A private redis-server dies and comes back empty: receivers never see an error,
sends meanwhile are reported as failed, and the layer re-announces its memberships
and delivers again once Redis answers."""

import asyncio

import pytest

from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from testing_support.redis_process import RedisProcess

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture
def server():
    process = RedisProcess().start()
    yield process
    process.stop()


async def test_redis_restart_is_survived(server):
    owner = RedisChannelLayer(hosts=[server.url], prefix="t", presence_timeout=1)
    sender = RedisChannelLayer(hosts=[server.url], prefix="t")
    try:
        channel = await owner.new_channel()
        await owner.group_add("room:1", channel)
        waiting = asyncio.create_task(owner.receive(channel))
        waiting_plain = asyncio.create_task(owner.receive("plain"))

        server.kill()  # SIGKILL, no persistence: Redis comes back empty
        with pytest.raises(MemberUnreachable, match="Redis did not take it"):
            await sender.send(channel, {"type": "lost"})
        result = await sender.group_send("room:1", {"type": "lost"})
        assert (result.sent_count, result.failed_count) == (0, 1)
        assert isinstance(result.errors[0], MemberUnreachable)
        with pytest.raises(MemberUnreachable, match="room:1"):
            await sender.group_members("room:1")  # an error of ours, not redis-py's
        done, _ = await asyncio.wait([waiting, waiting_plain], timeout=1.5)
        assert not done  # receivers keep waiting: nothing raised into them

        server.start()  # same port, empty
        for _ in range(50):  # the owner's heartbeat finds its key gone: re-announce
            if await sender.group_members("room:1") == {channel}:
                break
            await asyncio.sleep(0.1)
        assert await sender.group_members("room:1") == {channel}
        assert (await sender.group_send("room:1", {"type": "back"})).sent_count == 1
        await sender.send("plain", {"type": "plain-back"})
        async with asyncio.timeout(5):
            assert await waiting == {"type": "back"}
            assert await waiting_plain == {"type": "plain-back"}
        assert owner.stats.redis_errors > 0
        assert sender.stats.failed_sends == 2
        assert sender.stats.redis_errors >= 3
    finally:
        for layer in (owner, sender):
            await layer.close()
