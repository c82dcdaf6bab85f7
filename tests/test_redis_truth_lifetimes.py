"""Redis memberships live exactly as long as their process and channel: members in
use outlive group_expiry, a forked child is another process, SIGTERM takes members
out at once; and counts tell the truth: no stray ChannelFull while acks travel,
every member of a group_send sent or failed. (Faults: test_redis_truth.py.)"""

import asyncio
import multiprocessing

import pytest
from asgiref.sync import async_to_sync

from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.config import place
from aether_compat.layers.redis.keys import group_tag
from tests.support.layers import REDIS_URL
from tests.support.redis_servers import redis_server
from tests.support.redis_truth import (
    child_process,
    forked_child,
    members_are,
    prefix,
    stop_child,
    terminate,
    until,
)

pytestmark = pytest.mark.redis


# 8a. Members in use outlive group_expiry


async def test_members_in_use_outlive_group_expiry():
    """group_expiry=2: a member with a waiting receiver and one with a session keep
    their membership past it; an unused member loses it."""
    name = prefix()
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=name, group_expiry=2)
    sender = RedisChannelLayer(hosts=[REDIS_URL], prefix=name, group_expiry=2)
    try:
        reading, session, unused = [await layer.new_channel() for _ in range(3)]
        got = asyncio.Queue()
        await layer.register_session(session, got.put)
        for member in (reading, session, unused):
            await layer.group_add("room", member)
        waiting = asyncio.create_task(layer.receive(reading))
        await asyncio.sleep(3.5)  # group_expiry is the clock under test
        assert await sender.group_members("room") == {reading, session}
        result = await sender.group_send("room", {"type": "still"})
        assert (result.sent_count, result.failed_count) == (2, 0)
        async with asyncio.timeout(5):
            assert await waiting == {"type": "still"}
            assert await got.get() == {"type": "still"}
    finally:
        await layer.flush()
        for each in (layer, sender):
            await each.close()


# 8b. A forked child is another process


def test_a_forked_child_gets_its_own_identity():
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix())
    mine = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("room", mine)
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    child = context.Process(target=forked_child, args=(layer, there))
    child.start()
    try:
        assert here.poll(20), "no report from the forked child"
        report = here.recv()
        assert report["client_id"] != layer.client_id
        assert layer.client_id not in report["channel"]
        assert async_to_sync(layer.new_channel)() != report["channel"]
        members = async_to_sync(layer.group_members)("room")
        assert members == {mine, report["channel"]}
        async_to_sync(layer.send)(report["channel"], {"type": "to-child"})
        assert here.poll(10)
        assert here.recv() == {"type": "to-child"}
        here.send("done")
        child.join(20)
        assert child.exitcode == 0
        assert async_to_sync(layer.group_members)("room") == {mine}
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)
        async_to_sync(layer.flush)()
        async_to_sync(layer.close)()


# 8c. SIGTERM: members leave at once


@pytest.mark.parametrize("mode", ["sigterm-hook", "graceful"])
async def test_members_leave_within_1_s_of_sigterm(mode):
    """presence_timeout=10, so only leaving on the way out can be this quick:
    leave_on_sigterm() in a plain process, the exit hook in a server-like one."""
    name = prefix()
    observer = RedisChannelLayer(hosts=[REDIS_URL], prefix=name)
    child, channel = await child_process(mode, name, 10)
    try:
        assert await observer.group_members("room") == {channel}
        terminate(child)
        await until(lambda: members_are(observer, set()), 1, "members left")
        async with asyncio.timeout(10):
            code = await child.wait()
        assert code == (0 if mode == "graceful" else -15)
    finally:
        await stop_child(child)
        await observer.flush()
        await observer.close()


# 9. No stray ChannelFull while the receiver's acks are on their way


async def test_a_received_message_frees_its_slot_before_anyone_hears_of_it():
    """Capacity 1, receiver in another process: each message is sent as soon as
    the previous one was reported received, and never finds the channel full."""
    name = prefix()
    sender = RedisChannelLayer(hosts=[REDIS_URL], prefix=name, capacity=1)
    child, channel = await child_process("echo", name, 10)
    try:
        for n in range(300):
            await sender.send(channel, {"type": "m", "n": n})  # ChannelFull fails
            async with asyncio.timeout(10):
                assert int(await child.stdout.readline()) == n
    finally:
        await stop_child(child)
        await sender.flush()
        await sender.close()


# 9. Every member of a group_send is either sent or failed


@pytest.mark.faults
async def test_own_members_on_a_failed_shard_are_each_counted_failed():
    """Two hosts; the one holding this instance's box dies: each of its members is
    a failure naming it, not one failure for the lot."""
    with redis_server() as first, redis_server() as second:
        servers = [first, second]
        layer = RedisChannelLayer(hosts=[s.url for s in servers], prefix="t")
        try:
            box_host = place(layer._presence.box, layer._connections.hosts)
            group = next(
                g
                for g in (f"room-{n}" for n in range(100))
                if place(group_tag(g), layer._connections.hosts) != box_host
            )
            mine = [await layer.new_channel() for _ in range(3)]
            for channel in (*mine, "plain-x"):
                await layer.group_add(group, channel)
            servers[box_host].kill()
            result = await layer.group_send(group, {"type": "x"})
            assert result.total == 4
            assert {e.channel for e in result.errors} >= set(mine)
        finally:
            await layer.close()
