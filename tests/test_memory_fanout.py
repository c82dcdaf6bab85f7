"""The in-memory layer's fast fan-out keeps every guarantee: one decode shared by
a group_send's receivers (each takes a copy that is its own), and messages handed
straight to receivers parked on the sender's loop (none lost if that receiver is
cancelled before it runs, order kept, a stopped reader still detected)."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync

from aether_compat.layers import InMemoryChannelLayer, codec
from aether_compat.layers import memory as memory_module
from aether_compat.layers.memory_channels import IDLE_BATCH
from aether_compat.layers.memory_queue import shareable
from tests.support.parking import until_parked


async def receive(layer, channel, within=2):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def parked_readers(layer, channels):
    tasks = [asyncio.create_task(receive(layer, c)) for c in channels]
    for channel in channels:
        await until_parked(layer, channel)
    return tasks


def test_only_all_immutable_messages_are_shared():
    flat = {"type": "x", "s": "a", "b": b"\x00", "i": 1, "f": 1.5, "t": True, "n": None}
    assert shareable(codec.encode(flat)) == flat
    for value in ([1], {"k": 1}, (1, 2)):
        assert shareable(codec.encode({"type": "x", "v": value})) is None


@pytest.mark.parametrize("parked", [True, False], ids=["parked", "queued"])
async def test_a_receiver_changing_a_shared_message_changes_no_other(parked):
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("g", channel)
    tasks = await parked_readers(layer, channels) if parked else None
    sent = {"type": "x", "text": "hi", "n": 1}
    await layer.group_send("g", sent)
    sent["text"] = "changed by the sender"
    if tasks is None:
        tasks = [asyncio.create_task(receive(layer, c)) for c in channels]
    got = await asyncio.gather(*tasks)
    first = got[0]
    first["text"] = "mine"
    first["extra"] = 1
    del first["n"]
    assert got[1] == got[2] == {"type": "x", "text": "hi", "n": 1}
    assert got[1] is not got[2]


@pytest.mark.parametrize("parked", [True, False], ids=["parked", "queued"])
async def test_nested_values_are_each_receivers_own(parked):
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(2)]
    for channel in channels:
        await layer.group_add("g", channel)
    tasks = await parked_readers(layer, channels) if parked else None
    await layer.group_send("g", {"type": "x", "items": [1], "meta": {"k": "v"}})
    if tasks is None:
        tasks = [asyncio.create_task(receive(layer, c)) for c in channels]
    first, second = await asyncio.gather(*tasks)
    first["items"].append(2)
    first["meta"]["k"] = "changed"
    assert second == {"type": "x", "items": [1], "meta": {"k": "v"}}


@pytest.mark.parametrize("how", ["send", "group_send"])
async def test_a_handed_message_survives_its_cancelled_reader_in_order(how):
    """The reader is cancelled after the message was handed to it but before it
    ran: the message goes back in front of the one sent after it."""
    layer = InMemoryChannelLayer()
    await layer.group_add("g", "c")
    await layer.group_add("g", "other")  # two members: the shared-decode path
    (reader,) = await parked_readers(layer, ["c"])
    if how == "send":
        await layer.send("c", {"type": "x", "n": 1})
        await layer.send("c", {"type": "x", "n": 2})
    else:
        await layer.group_send("g", {"type": "x", "n": 1})
        await layer.group_send("g", {"type": "x", "n": 2})
    assert not reader.done()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert (await receive(layer, "c"))["n"] == 1
    assert (await receive(layer, "c"))["n"] == 2


async def test_a_handed_message_survives_its_channel_being_forgotten():
    """A channel with no group, no queue and no waiter may be forgotten while its
    handed message is on its way; a cancelled reader still leaves it behind."""
    layer = InMemoryChannelLayer()
    (reader,) = await parked_readers(layer, ["c"])
    await layer.send("c", {"type": "x"})
    for n in range(IDLE_BATCH + 2):  # fills the idle batch: "c" is forgotten
        await layer.send(f"once-{n}", {"type": "y"})
        await layer.receive(f"once-{n}")
    assert "c" not in layer._channels
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await receive(layer, "c") == {"type": "x"}


async def test_a_reader_of_handed_messages_that_stops_leaves_its_groups(monkeypatch):
    """A hand-over stamps the reader's reading time, so a reader that only ever got
    handed messages, then stopped, is still found out when its next one expires."""
    clock = FakeClock()
    monkeypatch.setattr(memory_module, "time", clock)
    layer = InMemoryChannelLayer(expiry=10)
    await layer.group_add("g", "stops")
    await layer.group_add("g", "other")
    (reader,) = await parked_readers(layer, ["stops"])
    await layer.group_send("g", {"type": "x"})
    assert await reader == {"type": "x"}  # handed; its reader then stops
    clock.now = 1.0
    await layer.group_send("g", {"type": "x"})
    clock.now = 20.0
    result = await layer.group_send("g", {"type": "x"})
    assert [error.channel for error in result.errors] == ["stops"]
    assert await layer.group_members("g") == {"other"}


async def test_a_sender_on_another_thread_wakes_a_parked_reader():
    """A hand-over needs the reader's own loop; from another thread's loop the
    message is queued and the reader woken to take it."""
    layer = InMemoryChannelLayer()
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    readers = await parked_readers(layer, ["a", "b"])
    thread = threading.Thread(
        target=async_to_sync(layer.group_send), args=("g", {"type": "x"})
    )
    thread.start()
    got = await asyncio.gather(*readers)
    thread.join()
    assert got == [{"type": "x"}, {"type": "x"}]
    assert got[0] is not got[1]


class FakeClock:
    """Stands in for the `time` module inside memory.py: the layer's clock only."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now
