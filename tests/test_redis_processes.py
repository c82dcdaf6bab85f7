"""Two OS processes sharing one Redis: a group spanning both gets every message with
the right counts, and `kill -9` of one makes its members vanish within 10 s."""

import asyncio
import multiprocessing
import os
import signal
import time
import uuid

import pytest

from aether_compat import ChannelFull, SendResult
from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL
from tests.support.processes import pipe_recv, stop_and_clean

pytestmark = pytest.mark.redis

GROUP = "room:shared"


def run_member_process(prefix: str, conn, presence_timeout: float) -> None:
    """The other process: three channels in GROUP; reports every message that
    arrives on the first two; never reads the third (so it can fill up)."""
    asyncio.run(_member_process(prefix, conn, presence_timeout))


async def _member_process(prefix, conn, presence_timeout):
    layer = RedisChannelLayer(
        hosts=[REDIS_URL], prefix=prefix, capacity=2, presence_timeout=presence_timeout
    )
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add(GROUP, channel)
    conn.send(channels)

    async def report(channel):
        while True:
            conn.send((channel, await layer.receive(channel)))

    await asyncio.gather(report(channels[0]), report(channels[1]))


@pytest.fixture
async def other_process():
    """Start the member process; yields (process, pipe, its channel names)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    parent, child = multiprocessing.Pipe()
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=run_member_process, args=(prefix, child, 10))
    process.start()
    try:
        channels = await pipe_recv(parent, within=20)
        yield prefix, process, parent, channels
    finally:
        await stop_and_clean(process, prefix)


async def test_group_spanning_two_processes_counts_every_member(other_process):
    """Members in both processes get the message; a full member of the other process
    is a failure naming its channel; presence lists all five."""
    prefix, _, pipe, theirs = other_process
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix, capacity=2)
    try:
        mine = [await layer.new_channel() for _ in range(2)]
        for channel in mine:
            await layer.group_add(GROUP, channel)
        assert await layer.group_members(GROUP) == set(mine + theirs)
        full = theirs[2]
        await layer.send(full, {"type": "filler"})
        await layer.send(full, {"type": "filler"})
        with pytest.raises(ChannelFull):
            await layer.send(full, {"type": "filler"})

        result = await layer.group_send(GROUP, {"type": "chat", "text": "hi"})

        assert (result.sent_count, result.failed_count) == (4, 1)
        assert isinstance(result.errors[0], ChannelFull)
        assert result.errors[0].channel == full
        for channel in mine:
            async with asyncio.timeout(3):
                assert await layer.receive(channel) == {"type": "chat", "text": "hi"}
        reports = {(await pipe_recv(pipe))[0] for _ in range(2)}
        assert reports == set(theirs[:2])
    finally:
        await layer.close()


async def test_kill_9_member_process_vanishes_within_10_seconds(other_process):
    """No group_discard: the killed process stops announcing itself, its members
    leave group_members within presence_timeout (default 10 s), the next
    group_send counts them as unreachable, and later ones no longer see them."""
    prefix, process, _, theirs = other_process
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        mine = await layer.new_channel()
        await layer.group_add(GROUP, mine)
        assert await layer.group_members(GROUP) == {mine, *theirs}
        os.kill(process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while await layer.group_members(GROUP) != {mine}:
            assert time.monotonic() - killed_at < 10.5, "members still listed"
            await asyncio.sleep(0.2)  # presence expiry is the clock under test
        result = await layer.group_send(GROUP, {"type": "x"})
        assert (result.sent_count, result.failed_count) == (1, 3)
        assert {e.channel for e in result.errors} == set(theirs)
        assert all(isinstance(e, MemberUnreachable) for e in result.errors)
        assert await layer.group_send(GROUP, {"type": "x"}) == SendResult(1, 0)
    finally:
        await layer.close()
