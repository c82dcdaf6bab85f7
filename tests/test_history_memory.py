"""Group history on the in-memory layer: the shared contract
(tests/history_contract.py), its expiry rule, its bounds, and the facade's
`history()` with its sync twin."""

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer as StockMemoryLayer

from aether_compat import Channels
from aether_compat.history import History, Position
from aether_compat.layers import InMemoryChannelLayer, codec
from aether_compat.layers.group_options import GroupOptions
from aether_compat.layers.memory_history import MemoryHistory
from tests.history_contract import *  # noqa: F403  (the contract's tests run here)
from tests.history_contract import broadcast


@pytest.fixture
def make_history_layer() -> Any:
    return lambda group_options: InMemoryChannelLayer(group_options=group_options)


SHORT = {"tick:*": {"history_size": 10, "history_ttl": 0.2}}


TTL = GroupOptions(history_size=10, history_ttl=1.0)


def payload(n: int) -> bytes:
    return codec.encode({"type": "x", "n": n})


def test_messages_older_than_history_ttl_leave_history():
    """Each message leaves history `history_ttl` after it was sent; the stream,
    still in use, keeps its epoch and offsets (times are given, not waited for)."""
    history = MemoryHistory()
    history.append("g", TTL, payload(0), now=0.0)
    history.append("g", TTL, payload(1), now=0.0)
    history.append("g", TTL, payload(2), now=0.8)
    epoch, offset, kept, recovered = history.read("g", TTL, None, None, now=1.5)
    assert [codec.decode(p)["n"] for p in kept] == [2]
    assert (offset, recovered) == (3, True)
    gone = history.read("g", TTL, Position(epoch, 1), None, now=1.5)
    assert (gone[2], gone[3]) == ([], False)
    assert history.read("g", TTL, Position(epoch, 2), None, now=1.5)[3] is True


def test_a_stream_that_expired_whole_starts_a_new_epoch():
    history = MemoryHistory()
    history.append("g", TTL, payload(0), now=0.0)
    before = history.read("g", TTL, None, None, now=0.5)[0]
    history.append("g", TTL, payload(1), now=2.0)
    epoch, offset, kept, recovered = history.read(
        "g", TTL, Position(before, 1), None, now=2.0
    )
    assert epoch != before
    assert (offset, kept, recovered) == (1, [], False)


def test_memory_is_bounded_by_the_settings_for_10000_groups():
    history = MemoryHistory()
    for n in range(10_000):
        history.append(f"g{n}", TTL, payload(n), now=0.0)
    assert history.streams == 10_000
    history.append("last", TTL, payload(0), now=1.5)
    assert history.streams == 1  # the dead streams went with that send


async def test_the_layer_forgets_a_stream_after_history_ttl():
    layer = InMemoryChannelLayer(group_options=SHORT)
    await broadcast(layer, "tick:a", 2)
    before = (await layer.group_history("tick:a")).position
    await asyncio.sleep(0.3)  # past the 0.2 s ttl: a longer wait changes nothing
    assert layer._history.streams == 1
    await broadcast(layer, "tick:a", 1)
    after = await layer.group_history("tick:a", since=before)
    assert after.epoch != before.epoch
    assert (after.offset, after.recovered) == (1, False)


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


def test_sends_from_many_threads_get_every_offset_once():
    """The offset is given under the layer's lock: threads with loops of their own
    never share or skip one."""
    layer = InMemoryChannelLayer(
        group_options={"room:*": {"history_size": 1000, "history_ttl": 60}}
    )

    def worker() -> None:
        async def sends() -> None:
            for _ in range(250):
                await layer.group_send("room:t", {"type": "x"})

        asyncio.run(sends())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    history = asyncio.run(layer.group_history("room:t"))
    assert [m["offset"] for m in history.messages] == list(range(1, 1001))
