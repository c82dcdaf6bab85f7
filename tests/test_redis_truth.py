"""Redis memberships and presence tell the truth under faults: discards that meet
an outage are retried, presence beats without an event loop, the inbox follows its
receivers, plain memberships survive restarts, leaving cleans up, flush keeps to
its prefix, cancelled receives keep order. (Lifetimes and counts: the file
test_redis_truth_lifetimes.py.)"""

import asyncio
import threading
import time

import pytest
import redis

from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL
from tests.support.redis_servers import redis_server, wait_until
from tests.support.redis_truth import (
    blocked_clients,
    child_process,
    members_are,
    paused,
    prefix,
    receive,
    silent,
    stop_child,
    until,
    until_or_not,
)
from tests.support.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.redis


# 1. A discard that meets an outage is retried; a re-announce does not undo it


@pytest.mark.faults
async def test_discard_that_meets_an_outage_is_retried_until_redis_takes_it():
    with redis_server() as server, tcp_proxy(server.port) as proxy:
        host = {"address": proxy.url, "socket_timeout": 0.5}
        owner = RedisChannelLayer(hosts=[host], prefix="t")
        observer = RedisChannelLayer(hosts=[server.url], prefix="t")
        try:
            channel = await owner.new_channel()
            for member in (channel, "plain-x"):
                await owner.group_add("room", member)
            proxy.stall()  # commands wait in the proxy; the client times out
            await owner.group_discard("room", channel)
            await owner.group_discard("room", "plain-x")
            proxy.drop_all()  # what waited never reaches Redis
            proxy.resume()
            assert owner.stats.redis_errors >= 2
            await until(lambda: members_are(observer, set()), 5, "ghosts gone")
        finally:
            await observer.close()
            await owner.close()


@pytest.mark.faults
async def test_reannounce_after_a_long_cut_leaves_out_what_was_discarded():
    """The cut outlasts presence_timeout, so the live key expires and the owner
    announces itself again: without the member it discarded meanwhile."""
    with redis_server() as server, tcp_proxy(server.port) as proxy:
        host = {"address": proxy.url, "socket_timeout": 0.5}
        owner = RedisChannelLayer(hosts=[host], prefix="t", presence_timeout=1)
        observer = RedisChannelLayer(hosts=[server.url], prefix="t")
        try:
            gone, kept = await owner.new_channel(), await owner.new_channel()
            for member in (gone, kept, "plain-x"):
                await owner.group_add("room", member)
            proxy.stall()
            await owner.group_discard("room", gone)
            proxy.drop_all()
            live = owner._presence.base + "l"
            await until(lambda: silent(server, live), 5, "live key expired")
            proxy.resume()
            expected = {kept, "plain-x"}
            await until(lambda: members_are(observer, expected), 5, "re-announced")
            assert owner._presence.reannounced >= 1
            assert await observer.group_members("room") == expected
        finally:
            await observer.close()
            await owner.close()


# 2. Presence beats while the process lives, with no event loop running


async def test_presence_beats_through_sync_work_without_an_event_loop():
    """The child joined through async_to_sync (its loops are closed) and now works
    synchronously for 6 s with presence_timeout=1: it stays a member, reachable."""
    name = prefix()
    observer = RedisChannelLayer(hosts=[REDIS_URL], prefix=name)
    child, channel = await child_process("sync-work", name, 1, seconds=6)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 3.5:  # > 3 x presence_timeout of checks
            assert await observer.group_members("room") == {channel}
            result = await observer.group_send("room", {"type": "x"})
            assert (result.sent_count, result.failed_count) == (1, 0), result
            await asyncio.sleep(0.25)  # time passing is the subject here
    finally:
        await stop_child(child)
        await observer.flush()
        await observer.close()


# 3. The inbox follows the loop that receives


def test_inbox_follows_the_loop_that_receives():
    """The channel was made on a loop that stays open but is not run any more,
    with its pump parked in BLMOVE: a receiver on another loop gets messages; when
    the old loop runs again, its pump ends without taking or repeating any."""
    with redis_server() as server:
        layer = RedisChannelLayer(hosts=[server.url], prefix="t")
        sender = RedisChannelLayer(hosts=[server.url], prefix="t")
        idle = asyncio.new_event_loop()
        try:
            channel = idle.run_until_complete(layer.new_channel())
            with server.client() as admin:
                deadline = time.monotonic() + 10
                while blocked_clients(admin) < 1:  # until the pump parks in BLMOVE
                    assert time.monotonic() < deadline, "the pump never parked"
                    idle.run_until_complete(asyncio.sleep(0.01))  # run it a little

            async def exchange(*numbers):
                for n in numbers:
                    await sender.send(channel, {"type": "m", "n": n})
                return [(await receive(layer, channel))["n"] for _ in numbers]

            assert asyncio.run(exchange(0)) == [0]
            idle.run_until_complete(asyncio.wait(asyncio.all_tasks(idle), timeout=5))
            assert asyncio.run(exchange(1, 2)) == [1, 2]
            with pytest.raises(TimeoutError):
                asyncio.run(receive(layer, channel, within=0.3))
        finally:
            idle.run_until_complete(idle.shutdown_asyncgens())
            idle.close()
            asyncio.run(layer.close())
            asyncio.run(sender.close())


def test_inbox_leaves_a_loop_that_is_stuck():
    """The pump's loop runs in another thread but is stuck in blocking code: a
    receiver elsewhere takes the pump over within seconds; once the stuck loop
    goes on, its old pump neither takes nor repeats a message."""
    with redis_server() as server:
        layer = RedisChannelLayer(hosts=[server.url], prefix="t")
        sender = RedisChannelLayer(hosts=[server.url], prefix="t")
        stuck, release = asyncio.new_event_loop(), threading.Event()
        thread = threading.Thread(target=stuck.run_forever, daemon=True)
        thread.start()
        try:
            made = asyncio.run_coroutine_threadsafe(layer.new_channel(), stuck)
            channel = made.result(10)
            with server.client() as admin:
                wait_until(lambda: blocked_clients(admin) >= 1, 10, "pump parked")
            stuck.call_soon_threadsafe(release.wait)  # blocking code on that loop

            async def exchange(*numbers):
                for n in numbers:
                    await sender.send(channel, {"type": "m", "n": n})
                return [(await receive(layer, channel, 10))["n"] for _ in numbers]

            assert asyncio.run(exchange(0)) == [0]
            release.set()
            assert asyncio.run(exchange(1, 2)) == [1, 2]
            with pytest.raises(TimeoutError):
                asyncio.run(receive(layer, channel, within=0.3))
        finally:
            release.set()
            stuck.call_soon_threadsafe(stuck.stop)
            thread.join(10)
            stuck.run_until_complete(stuck.shutdown_asyncgens())
            stuck.close()
            asyncio.run(layer.close())
            asyncio.run(sender.close())


# 4. Plain-channel memberships survive a Redis restart


@pytest.mark.faults
async def test_plain_memberships_survive_a_redis_restart():
    with redis_server() as server:
        owner = RedisChannelLayer(hosts=[server.url], prefix="t", presence_timeout=1)
        plain_only = RedisChannelLayer(hosts=[server.url], prefix="t")
        observer = RedisChannelLayer(hosts=[server.url], prefix="t")
        try:
            channel = await owner.new_channel()
            await owner.group_add("room", channel)
            await owner.group_add("room", "plain-x")
            await plain_only.group_add("room", "plain-y")  # no new_channel() at all
            server.kill()  # no persistence: Redis comes back empty
            await asyncio.to_thread(server.start)
            expected = {channel, "plain-x", "plain-y"}
            await until(lambda: members_are(observer, expected), 10, "re-announced")
        finally:
            for layer in (observer, plain_only, owner):
                await layer.close()


# 5. Leaving a group removes this process from its index


async def test_joining_and_leaving_200_groups_leaves_no_keys():
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix())
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        a, b = await layer.new_channel(), await layer.new_channel()
        groups = [f"many-{n}" for n in range(200)]
        for group in groups:
            for member in (a, b, "plain-x"):
                await layer.group_add(group, member)
        await layer.group_discard("many-0", a)  # b is still there: index kept
        assert raw.zscore(f"{layer.prefix}:{{g.many-0}}:p", layer._presence.box)
        for group in groups:
            for member in (a, b, "plain-x"):
                await layer.group_discard(group, member)
        left = [k for k in raw.scan_iter(match=f"{layer.prefix}:*", count=1000)]
        assert [k for k in left if b"{g." in k or b":m:" in k] == []
    finally:
        raw.close()
        await layer.flush()
        await layer.close()


# 6. flush() keeps to its prefix


async def test_flush_spares_a_prefix_that_extends_this_one():
    short_name = prefix()
    short = RedisChannelLayer(hosts=[REDIS_URL], prefix=short_name)
    long = RedisChannelLayer(hosts=[REDIS_URL], prefix=short_name + ":chat")
    try:
        channel = await long.new_channel()
        await long.group_add("room", channel)
        await long.send("plain-a", {"type": "kept"})
        await short.send("plain-a", {"type": "flushed"})
        await short.flush()
        assert await long.group_members("room") == {channel}
        assert await receive(long, "plain-a") == {"type": "kept"}
    finally:
        await long.flush()
        for layer in (short, long):
            await layer.close()


# 7. A cancelled receive on a plain channel does not reorder its messages


@pytest.mark.faults
async def test_cancelled_plain_receive_keeps_the_order():
    """The first receive is cancelled while its pop waits in Redis (paused); the
    next receive still gets the oldest message, then the others in order."""
    with redis_server() as server:
        layer = RedisChannelLayer(hosts=[server.url], prefix="t")
        try:
            await layer.send("warm", {"type": "w"})  # scripts loaded, pool warm
            assert await receive(layer, "warm") == {"type": "w"}
            for n in range(3):
                await layer.send("plain-q", {"type": "m", "n": n})
            with server.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
                first = asyncio.create_task(layer.receive("plain-q"))
                await until(lambda: paused(admin, 1), 5, "first pop paused")
                first.cancel()
                second = asyncio.create_task(layer.receive("plain-q"))
                # the old code sent its pop now; the gate holds it back (a bound)
                await until_or_not(lambda: paused(admin, 2), 1)
                admin.execute_command("CLIENT", "UNPAUSE")
            got = [(await second)["n"]]
            got += [(await receive(layer, "plain-q"))["n"] for _ in range(2)]
            assert got == [0, 1, 2]
            assert first.cancelled()
        finally:
            await layer.close()
