"""Open items: a group message Redis stores for a process without raising each
member's count, because none of them could be full. Capacity must stay exact: a
member that reads keeps no count, one that does not read fills up to its capacity
and no further, and a reader that took a message frees its slot before its
receive() returns."""

import asyncio

import pytest
import redis

from aether_compat import ChannelFull
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.keys import box_base
from tests.support.layers import REDIS_URL
from tests.support.parking import until, until_parked

pytestmark = pytest.mark.redis


async def parked_readers(
    layer: RedisChannelLayer, names: list[str]
) -> list[asyncio.Future]:
    """A receive() of each channel, returned once every one of them is parked."""
    readers = [asyncio.ensure_future(layer.receive(name)) for name in names]
    for name in names:
        await until_parked(layer, name)
    return readers


async def all_settled(layer: RedisChannelLayer) -> None:
    """Wait until `layer`'s process box holds no count and no open item: every
    message it was sent has been taken back."""
    base = box_base(layer.prefix, layer._box)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        await until(
            lambda: raw.hlen(base + "n") == 0 and raw.hlen(base + "o") == 0,
            "counts and open items settled",
            within=5,
        )
    finally:
        raw.close()


async def test_members_that_read_leave_no_count_and_no_open_item(make_redis):
    sender, owner = make_redis(), make_redis()
    names = [await owner.new_channel() for _ in range(300)]
    for name in names:
        await owner.group_add("room", name)
    for round_ in range(5):
        readers = await parked_readers(owner, names)
        result = await sender.group_send("room", {"type": "m", "n": round_})
        assert (result.sent_count, result.failed_count) == (300, 0)
        got = await asyncio.wait_for(asyncio.gather(*readers), 10)
        assert got == [{"type": "m", "n": round_}] * 300
    await all_settled(owner)


HISTORY = {"room": {"history_size": 50, "history_ttl": 60}}


@pytest.mark.parametrize("options", [{}, HISTORY], ids=["plain", "history"])
async def test_a_member_that_does_not_read_fills_to_its_capacity_exactly(
    make_redis, options
):
    """One member reads every message, one never does: each group message reaches
    both until the idle one holds `capacity`, then only the reader, whichever way
    Redis stored them (open or counted), with or without history."""
    sender = make_redis(capacity=5, group_options=options)
    owner = make_redis(capacity=5, group_options=options)
    reader, idle = await owner.new_channel(), await owner.new_channel()
    await owner.group_add("room", reader)
    await owner.group_add("room", idle)
    sent = []
    for index in range(12):
        task = asyncio.ensure_future(owner.receive(reader))
        await until_parked(owner, reader)
        result = await sender.group_send("room", {"type": "m", "n": index})
        sent.append(result.sent_count)
        assert (await asyncio.wait_for(task, 5))["n"] == index
        if result.failed_count:
            assert isinstance(result.errors[0], ChannelFull)
            assert result.errors[0].channel == idle
    assert sent == [2] * 5 + [1] * 7
    for index in range(5):  # the idle member kept the first five, in order
        message = await asyncio.wait_for(owner.receive(idle), 5)
        assert message["n"] == index


async def test_back_to_back_broadcasts_to_a_capacity_one_member(make_redis):
    """A receive() that returned has freed its slot: the next broadcast, sent right
    after it, is never refused as full."""
    sender, owner = make_redis(capacity=1), make_redis(capacity=1)
    members = [await owner.new_channel() for _ in range(20)]
    for name in members:
        await owner.group_add("room", name)
    for index in range(30):
        readers = await parked_readers(owner, members)
        result = await sender.group_send("room", {"type": "m", "n": index})
        assert (result.sent_count, result.failed_count) == (20, 0), result.errors
        await asyncio.wait_for(asyncio.gather(*readers), 5)


@pytest.mark.parametrize("options", [{}, HISTORY], ids=["plain", "history"])
async def test_a_burst_to_readers_that_lag_keeps_every_count_exact(make_redis, options):
    """Many broadcasts before anyone reads: every member ends with exactly
    `capacity` messages and the rest are counted failures."""
    sender = make_redis(capacity=7, group_options=options)
    owner = make_redis(capacity=7, group_options=options)
    members = [await owner.new_channel() for _ in range(50)]
    for name in members:
        await owner.group_add("room", name)
    results = [await sender.group_send("room", {"type": "m"}) for _ in range(10)]
    assert sum(r.sent_count for r in results) == 7 * 50
    assert sum(r.failed_count for r in results) == 3 * 50
    for name in members:
        for _ in range(7):
            await asyncio.wait_for(owner.receive(name), 5)
    await all_settled(owner)
