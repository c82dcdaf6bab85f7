"""Broadcasts that leave members out (`exclude=`): on both backends, through the
facade and its sync twin, for queued channels and registered sessions; stock
layers refuse it; and a 1,000-member group spread over two processes on Redis."""

import asyncio
import multiprocessing

import pytest
from channels.layers import InMemoryChannelLayer as StockMemoryLayer

from aether_compat import Channels, SendResult
from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL
from tests.support.processes import pipe_recv, stop_and_clean
from tests.support.redis_truth import prefix as fresh_prefix


async def join(layer, group, count):
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    return channels


async def received(layer, channel, within=2):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def test_an_excluded_member_is_neither_sent_nor_failed(facade_layer):
    a, b, c = await join(facade_layer, "room:ex", 3)
    result = await Channels.group("room:ex").broadcast("one", exclude=[b])
    assert result == SendResult(2, 0, ())
    await Channels.group("room:ex").broadcast("two")
    assert (await received(facade_layer, a))["text"] == "one"
    assert (await received(facade_layer, b))["text"] == "two"
    assert (await received(facade_layer, c))["text"] == "one"


async def test_binary_and_sync_broadcasts_exclude_too(facade_layer):
    a, b = await join(facade_layer, "room:exb", 2)
    result = await Channels.group("room:exb").broadcast_binary(b"\x01", exclude=[a])
    assert result == SendResult(1, 0, ())
    twin = Channels.sync.group("room:exb")
    result = await asyncio.to_thread(twin.broadcast, "t", exclude=[b])
    assert result == SendResult(1, 0, ())
    assert (await received(facade_layer, a))["text"] == "t"
    assert (await received(facade_layer, b))["bytes"] == b"\x01"


async def test_excluded_sessions_and_plain_channels_are_left_out(facade_layer):
    got = []
    sessions = await join(facade_layer, "room:exs", 2)
    for channel in sessions:
        await Channels.register_session(channel, lambda text, c=channel: got.append(c))
    plain = "plain-exclude-test"
    await facade_layer.group_add("room:exs", plain)
    result = await Channels.group("room:exs").broadcast(
        "x", exclude=[sessions[0], plain, "not-a-member"]
    )
    assert result == SendResult(1, 0, ())
    assert got == [sessions[1]]


async def test_exclude_takes_channel_names(facade_layer):
    await join(facade_layer, "room:exn", 1)
    with pytest.raises(TypeError, match="not one string"):
        await Channels.group("room:exn").broadcast("x", exclude="specific.abc!1")
    with pytest.raises(TypeError):
        await Channels.group("room:exn").broadcast("x", exclude=["bad name"])
    with pytest.raises(TypeError, match="not one string"):
        await facade_layer.group_send(
            "room:exn", {"type": "aether.message", "text": "x"}, exclude="a"
        )


async def test_stock_layers_refuse_exclude():
    Channels.configure(StockMemoryLayer())
    with pytest.raises(NotImplementedError, match="cannot leave members out"):
        await Channels.group("room:stock").broadcast("x", exclude=["a.b"])
    with pytest.raises(NotImplementedError, match="cannot leave members out"):
        await Channels.group("room:stock").broadcast_binary(b"x", exclude=["a.b"])
    assert await Channels.group("room:stock").broadcast("x", exclude=[]) == SendResult()


# 1,000 members over two processes on Redis

GROUP = "room:thousand"
THEIRS = 500


def run_member_process(prefix, conn):
    asyncio.run(_member_process(prefix, conn))


async def _member_process(prefix, conn):
    """THEIRS members of GROUP; reports (channel, text) for every arrival."""
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    channels = await join(layer, GROUP, THEIRS)
    conn.send(channels)

    async def report(channel):
        while True:
            conn.send((channel, (await layer.receive(channel))["text"]))

    await asyncio.gather(*(report(channel) for channel in channels))


@pytest.fixture
async def other_process():
    prefix = fresh_prefix()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=run_member_process, args=(prefix, child)
    )
    process.start()
    try:
        yield prefix, parent, await pipe_recv(parent, within=30)
    finally:
        await stop_and_clean(process, prefix)


@pytest.mark.redis
@pytest.mark.parametrize("whose", ["theirs", "mine"])
async def test_exclude_on_a_1000_member_group_over_two_processes(other_process, whose):
    """One member left out of 1,000 (a channel of the other process, or a
    session of this one): 999 sent, 0 failed, and each member's next message
    shows whether the excluded broadcast reached it."""
    prefix, pipe, theirs = other_process
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    Channels.configure(layer)
    arrivals = []
    try:
        mine = await join(layer, GROUP, 1000 - THEIRS)
        for channel in mine:
            await Channels.register_session(
                channel, lambda text, c=channel: arrivals.append((c, text))
            )
        assert len(await layer.group_members(GROUP)) == 1000
        left_out = theirs[7] if whose == "theirs" else mine[7]
        group = Channels.group(GROUP)
        result = await group.broadcast("first", exclude=[left_out])
        assert (result.sent_count, result.failed_count) == (999, 0)
        assert (await group.broadcast("second")).sent_count == 1000
        async with asyncio.timeout(20):
            while len(arrivals) < 1999:
                arrivals.append(await pipe_recv(pipe))
        seen = {}
        for channel, text in arrivals:
            seen.setdefault(channel, []).append(text)
        assert seen.pop(left_out) == ["second"]
        assert len(seen) == 999
        assert all(texts == ["first", "second"] for texts in seen.values())
    finally:
        await layer.close()
