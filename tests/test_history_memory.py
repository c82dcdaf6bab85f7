"""Group history on the in-memory layer: the shared contract
(tests/history_contract.py), its expiry rule, its bounds, and the facade's
`history()` with its sync twin."""

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer as StockMemoryLayer

from aether_compat import Channels
from aether_compat.history import History
from aether_compat.layers import InMemoryChannelLayer
from tests.history_contract import *  # noqa: F403  (the contract's tests run here)
from tests.history_contract import broadcast


@pytest.fixture
def make_history_layer() -> Any:
    return lambda group_options: InMemoryChannelLayer(group_options=group_options)


SHORT = {"tick:*": {"history_size": 10, "history_ttl": 0.2}}


async def test_messages_older_than_history_ttl_leave_history():
    layer = InMemoryChannelLayer(group_options=SHORT)
    await broadcast(layer, "tick:a", 2)
    epoch = (await layer.group_history("tick:a")).epoch
    await asyncio.sleep(0.12)
    await broadcast(layer, "tick:a", 1, start=2)
    await asyncio.sleep(0.12)  # the first two are past their ttl, the third is not
    history = await layer.group_history("tick:a")
    assert [m["n"] for m in history.messages] == [2]
    assert (history.epoch, history.offset) == (epoch, 3)
    gone = await layer.group_history("tick:a", since=(epoch, 1))
    assert (gone.messages, gone.recovered) == ([], False)


async def test_a_stream_that_expired_whole_starts_a_new_epoch():
    layer = InMemoryChannelLayer(group_options=SHORT)
    await broadcast(layer, "tick:a", 2)
    before = (await layer.group_history("tick:a")).position
    await asyncio.sleep(0.3)
    await broadcast(layer, "tick:a", 1)
    after = await layer.group_history("tick:a", since=before)
    assert after.epoch != before.epoch
    assert (after.offset, after.recovered) == (1, False)


async def test_memory_is_bounded_by_the_settings_for_10000_groups():
    layer = InMemoryChannelLayer(group_options=SHORT)
    for n in range(10_000):
        await layer.group_send(f"tick:{n}", {"type": "x", "n": n})
    assert layer._history.streams == 10_000
    await asyncio.sleep(0.3)
    await layer.group_send("tick:last", {"type": "x"})
    assert layer._history.streams == 1  # the dead streams went with that send


async def test_a_layer_without_group_options_keeps_no_history_table():
    layer = InMemoryChannelLayer()
    assert layer._history is None
    channel = await layer.new_channel()
    await layer.group_add("room:a", channel)
    await layer.group_send("room:a", {"type": "x"})
    assert await layer.receive(channel) == {"type": "x"}
    assert await layer.group_history("room:a") == History.none()


async def test_the_facade_reads_history():
    layer = InMemoryChannelLayer(group_options=SHORT)
    Channels.configure(layer)
    await Channels.group("tick:a").broadcast("one", sender="ann")
    await Channels.group("tick:a").broadcast("two")
    history = await Channels.group("tick:a").history()
    assert [(m["text"], m["offset"]) for m in history.messages] == [
        ("one", 1),
        ("two", 2),
    ]
    assert history.messages[0]["sender"] == "ann"
    since = await Channels.group("tick:a").history(since=(history.epoch, 1))
    assert [m["text"] for m in since.messages] == ["two"]
    last = await Channels.group("tick:a").history(limit=1)
    assert [m["text"] for m in last.messages] == ["two"]


def test_the_sync_facade_reads_history():
    layer = InMemoryChannelLayer(group_options=SHORT)
    Channels.configure(layer)
    outcome: dict[str, Any] = {}

    def view() -> None:
        Channels.sync.group("tick:a").broadcast("hello")
        outcome["history"] = Channels.sync.group("tick:a").history(limit=5)

    thread = threading.Thread(target=view)
    thread.start()
    thread.join(10)
    history = outcome["history"]
    assert [m["text"] for m in history.messages] == ["hello"]
    assert history.recovered is True


async def test_the_sync_facade_refuses_to_block_a_running_loop():
    Channels.configure(InMemoryChannelLayer(group_options=SHORT))
    with pytest.raises(RuntimeError, match="history"):
        Channels.sync.group("tick:a").history()


async def test_a_stock_layer_has_no_history():
    Channels.configure(StockMemoryLayer())
    with pytest.raises(NotImplementedError, match="history"):
        await Channels.group("room:a").history()
