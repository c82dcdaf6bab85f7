"""One decode per group message: a process hands its readers shallow copies of one
decoded message when every value of it is immutable, and decodes afresh for each
reader otherwise. Either way a reader owns what it got: changing it, nested values
included, never changes what another reader gets, handed over while parked or
taken later from the buffer. And receive()'s own hand-off path stays safe to
cancel."""

import asyncio
import copy

import pytest

from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.codec import encode
from aether_compat.layers.redis.handoff import shared_message
from tests.support.parking import until_parked
from tests.test_redis_open_items import all_settled

pytestmark = pytest.mark.redis

FLAT = {"type": "m", "text": "hello", "n": 1, "f": 1.5, "b": b"x", "none": None}
NESTED = {"type": "m", "items": [1, [2, 3]], "meta": {"a": 1, "deep": {"b": [4]}}}


def spoil(message: dict) -> None:
    """What a careless consumer might do to the message it got."""
    message["text"] = "changed"
    message["added"] = True
    message.pop("type", None)
    for value in list(message.values()):
        if isinstance(value, list):
            value.append("changed")
            value.clear()
        elif isinstance(value, dict):
            value["added"] = True
            for inner in value.values():
                if isinstance(inner, dict):
                    inner.clear()


async def receive_and_spoil(layer: RedisChannelLayer, name: str) -> dict:
    """A copy of what `receive()` returned, taken before spoiling it."""
    message = await layer.receive(name)
    seen = copy.deepcopy(message)
    spoil(message)
    return seen


def test_only_messages_of_immutable_values_are_shared():
    assert shared_message(encode(FLAT)) == FLAT
    assert shared_message(encode(NESTED)) is None
    assert shared_message(b"\xc1 not msgpack") is None  # its readers raise, as before
    assert shared_message(b"\x93\x01\x02\x03") is None  # not a dict


@pytest.mark.parametrize("message", [FLAT, NESTED], ids=["flat", "nested"])
@pytest.mark.parametrize("same_process", [True, False], ids=["own", "other"])
async def test_parked_readers_each_own_their_message(make_redis, message, same_process):
    owner = make_redis()
    sender = owner if same_process else make_redis()
    names = [await owner.new_channel() for _ in range(20)]
    for name in names:
        await owner.group_add("room", name)
    for _ in range(3):
        readers = [asyncio.ensure_future(receive_and_spoil(owner, n)) for n in names]
        for name in names:
            await until_parked(owner, name)
        result = await sender.group_send("room", message)
        assert result.sent_count == len(names)
        seen = await asyncio.wait_for(asyncio.gather(*readers), 10)
        assert seen == [message] * len(names)


@pytest.mark.parametrize("message", [FLAT, NESTED], ids=["flat", "nested"])
async def test_buffered_readers_each_own_their_message(make_redis, message):
    owner, sender = make_redis(), make_redis()
    names = [await owner.new_channel() for _ in range(5)]
    for name in names:
        await owner.group_add("room", name)
    await sender.group_send("room", message)
    await sender.group_send("room", {"type": "next"})
    for name in names:  # one by one: each spoils its copy before the next reads
        assert await asyncio.wait_for(receive_and_spoil(owner, name), 10) == message
    for name in names:
        got = await asyncio.wait_for(owner.receive(name), 10)
        assert got == {"type": "next"}


async def test_two_copies_of_one_message_are_distinct_objects(make_redis):
    owner = make_redis()
    names = [await owner.new_channel() for _ in range(2)]
    for name in names:
        await owner.group_add("room", name)
    readers = [asyncio.ensure_future(owner.receive(name)) for name in names]
    for name in names:
        await until_parked(owner, name)
    await owner.group_send("room", FLAT)
    first, second = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert first == second == FLAT
    assert first is not second


async def test_a_reader_cancelled_after_the_hand_off_puts_it_back_counted(
    make_redis, monkeypatch
):
    """receive() takes a handed item by itself (the usual case): cancelled after
    the hand-off, before it ran, it puts the item back first, counted, and the
    next receive() gets it, then the next message, in order."""
    owner = make_redis()
    name = await owner.new_channel()
    await owner.group_add("room", name)
    reader = asyncio.ensure_future(owner.receive(name))
    await until_parked(owner, name)
    local = owner._inbox.local
    put = local.put

    def put_then_cancel(*args, **kwargs):
        put(*args, **kwargs)  # handed to the parked reader...
        reader.cancel()  # ...which is cancelled before it runs

    monkeypatch.setattr(local, "put", put_then_cancel)
    await owner.group_send("room", {"type": "m", "n": 1})
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(reader, 10)
    monkeypatch.setattr(local, "put", put)
    await owner.group_send("room", {"type": "m", "n": 2})
    for n in (1, 2):
        assert await asyncio.wait_for(owner.receive(name), 10) == {"type": "m", "n": n}
    await all_settled(owner)
