"""Group history on Redis (one server): offsets assigned in the fan-out's own step,
history bounded by size, encrypted at rest, the newest message for a late joiner,
offset order through the sequencer, and groups without history paying nothing."""

import asyncio
import multiprocessing
import os
import signal
import uuid

import pytest

from aether_compat.history import Position
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.connections import script
from aether_compat.layers.redis.history import new_epoch
from aether_compat.layers.redis.history_scripts import GROUP_BOXES_HISTORY
from aether_compat.layers.redis.keys import group_key, group_tag
from tests.support.layers import REDIS_URL
from tests.support.processes import pipe_recv

pytestmark = pytest.mark.redis

OPTIONS = {"room:*": {"history_size": 100, "history_ttl": 300, "last_on_join": True}}


def history_layer(prefix: str | None = None, **config) -> RedisChannelLayer:
    config.setdefault("group_options", OPTIONS)
    return RedisChannelLayer(
        hosts=[REDIS_URL], prefix=prefix or f"test-{uuid.uuid4().hex[:12]}", **config
    )


@pytest.fixture
async def layers():
    made: list[RedisChannelLayer] = []

    def make(**config) -> RedisChannelLayer:
        prefix = made[0].prefix if made else None
        layer = history_layer(prefix, **config)
        made.append(layer)
        return layer

    yield make
    if made:
        await made[0].flush()
    for layer in made:
        await layer.close()


async def receive(layer, channel, within=5.0):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def test_members_get_offset_and_epoch_and_the_sender_dict_is_untouched(layers):
    a, b = layers(), layers()
    mine, theirs = await a.new_channel(), await b.new_channel()
    got: list[dict] = []
    session = await a.new_channel()

    async def sender(message):
        got.append(message)

    await a.register_session(session, sender)
    for channel in (mine, theirs, session):
        await a.group_add("room:x", channel)
    message = {"type": "chat", "text": "hi"}
    result = await a.group_send("room:x", message)
    assert (result.sent_count, result.failed_count) == (3, 0)
    assert message == {"type": "chat", "text": "hi"}
    first = await receive(a, mine)
    assert first["offset"] == 1
    assert first["epoch"]
    assert await receive(b, theirs) == first
    assert got == [first]
    history = await b.group_history("room:x")
    assert history.position == Position(first["epoch"], 1)
    assert history.messages == [first]
    assert history.recovered


async def test_offsets_are_consecutive_with_concurrent_senders(layers):
    """Three layer instances send at once: one offset per message, no repeats,
    and every member sees them in offset order."""
    senders = [layers(capacity=1000) for _ in range(3)]
    receiver = layers(capacity=1000)
    channel = await receiver.new_channel()
    await receiver.group_add("room:c", channel)

    async def burst(layer, name):
        for i in range(40):
            await layer.group_send("room:c", {"type": "m", "who": name, "i": i})

    await asyncio.gather(*(burst(s, n) for n, s in enumerate(senders)))
    offsets = [(await receive(receiver, channel))["offset"] for _ in range(120)]
    assert offsets == list(range(1, 121))


def _send_from_process(prefix: str, name: int, count: int, conn) -> None:
    async def run() -> None:
        layer = history_layer(prefix, capacity=1000)
        conn.recv()  # start together
        await asyncio.gather(
            *(
                layer.group_send("room:p", {"type": "m", "who": name, "i": i})
                for i in range(count)
            )
        )
        await layer.close()
        conn.send("done")

    asyncio.run(run())


async def test_offsets_are_consecutive_across_processes(layers):
    """Senders in three OS processes, each with many sends in flight at once."""
    receiver = layers(capacity=1000)
    channel = await receiver.new_channel()
    await receiver.group_add("room:p", channel)
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for name in range(3):
        parent, child = multiprocessing.Pipe()
        process = context.Process(
            target=_send_from_process, args=(receiver.prefix, name, 50, child)
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    try:
        for pipe in pipes:
            pipe.send("go")
        for pipe in pipes:
            assert await pipe_recv(pipe, within=60) == "done"
        seen = [await receive(receiver, channel) for _ in range(150)]
        history = await receiver.group_history("room:p")
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
    assert [m["offset"] for m in seen] == list(range(1, 151))
    assert sorted((m["who"], m["i"]) for m in seen) == sorted(
        (w, i) for w in range(3) for i in range(50)
    )
    assert [m["offset"] for m in history.messages] == list(range(51, 151))


async def test_history_size_100_recovers_100_and_not_101(layers):
    layer = layers()
    await layer.group_send("room:s", {"type": "m", "i": 0})
    start = (await layer.group_history("room:s")).position
    for i in range(1, 101):
        await layer.group_send("room:s", {"type": "m", "i": i})
    full = await layer.group_history("room:s", since=start)
    assert full.recovered
    assert [m["i"] for m in full.messages] == list(range(1, 101))
    assert [m["offset"] for m in full.messages] == list(range(2, 102))
    await layer.group_send("room:s", {"type": "m", "i": 101})
    lost = await layer.group_history("room:s", since=start)
    assert (lost.recovered, lost.messages, lost.offset) == (False, [], 102)
    other = await layer.group_history("room:s", since=("another", 1))
    assert (other.recovered, other.messages) == (False, [])
    limited = await layer.group_history("room:s", since=(start.epoch, 99), limit=2)
    assert (limited.recovered, limited.messages) == (False, [])
    newest = await layer.group_history("room:s", limit=2)
    assert [m["i"] for m in newest.messages] == [100, 101]
    assert newest.recovered
    caught_up = await layer.group_history("room:s", since=newest.position)
    assert (caught_up.recovered, caught_up.messages) == (True, [])


async def test_expired_messages_are_not_recovered(layers):
    layer = layers(group_options={"room:*": {"history_size": 10, "history_ttl": 0.2}})
    await layer.group_send("room:t", {"type": "m"})
    start = (await layer.group_history("room:t")).position
    await layer.group_send("room:t", {"type": "m"})
    assert (await layer.group_history("room:t", since=start)).recovered
    await asyncio.sleep(0.3)  # history_ttl is the clock under test
    late = await layer.group_history("room:t", since=start)
    assert (late.recovered, late.messages, late.epoch) == (False, [], start.epoch)
    assert (await layer.group_history("room:t")).messages == []


async def test_history_is_encrypted_at_rest(layers):
    layer = layers(symmetric_encryption_keys=["a secret"])
    other = layers(symmetric_encryption_keys=["a secret"])
    channel = await other.new_channel()
    await other.group_add("room:e", channel)
    await layer.group_send("room:e", {"type": "m", "text": "plaintext-marker"})
    assert (await receive(other, channel))["text"] == "plaintext-marker"
    history = await other.group_history("room:e")
    assert history.messages[0]["text"] == "plaintext-marker"
    client = layer._connections.command_client(group_tag("room:e"))
    stored = await client.lrange(f"{layer.prefix}:{{g.room:e}}:h", 0, -1)
    assert len(stored) == 1
    assert b"plaintext-marker" not in stored[0]


async def test_last_on_join_hands_the_newest_message_to_the_joiner_only(layers):
    a, b = layers(), layers()
    old = await a.new_channel()
    await a.group_add("room:l", old)
    empty = await a.new_channel()
    await a.group_add("room:l", empty)  # no message yet: nothing handed
    for i in range(3):
        await a.group_send("room:l", {"type": "m", "i": i})
    for i in range(3):
        assert (await receive(a, old))["i"] == i
        assert (await receive(a, empty))["i"] == i
    got: list[dict] = []

    async def sender(message):
        got.append(message)

    session = await a.new_channel()
    await a.register_session(session, sender)
    await a.group_add("room:l", session)
    queued, remote = await a.new_channel(), await b.new_channel()
    await a.group_add("room:l", queued)
    await a.group_add("room:l", remote)  # another instance's channel
    newest = {"type": "m", "i": 2, "offset": 3, "epoch": got[0]["epoch"]}
    assert got == [newest]
    assert await receive(a, queued) == newest
    assert await receive(b, remote) == newest
    await a.group_send("room:l", {"type": "m", "i": 3})
    for channel in (old, queued):
        assert (await receive(a, channel))["offset"] == 4
    assert [m["offset"] for m in got] == [3, 4]


async def test_a_gap_is_filled_from_history(layers):
    """A sender that assigned an offset and died before delivering: the next
    message is held, then the missing one comes from history, in order."""
    layer = layers()
    channel = await layer.new_channel()
    await layer.group_add("room:g", channel)
    await layer.group_send("room:g", {"type": "m", "i": 1})
    data = layer._seal.seal(b"\x81\xa4type\xa1m")  # {"type": "m"}
    procs = group_key(layer.prefix, "room:g")
    args = [0, data, new_epoch(), 86_400_000, 100, 300_000, "0"]
    lua = script(GROUP_BOXES_HISTORY, [procs], args)
    await layer._connections.execute([(group_tag("room:g"), lua)])  # no delivery
    await layer.group_send("room:g", {"type": "m", "i": 3})
    seen = [await receive(layer, channel) for _ in range(3)]
    assert [m["offset"] for m in seen] == [1, 2, 3]
    assert [m.get("i") for m in seen] == [1, None, 3]
    assert layer._history.sequencer.fills == 1


async def test_excluded_members_are_left_out_of_a_filled_gap(layers):
    layer = layers()
    kept, left_out = await layer.new_channel(), await layer.new_channel()
    for channel in (kept, left_out):
        await layer.group_add("room:x", channel)
    other = layers()
    procs = group_key(layer.prefix, "room:x")
    # a message that excluded `left_out`, stored but never delivered
    data = layer._seal.seal(b"\x81\xa4type\xa1m")
    args = [0, data, new_epoch(), 86_400_000, 100, 300_000, f"0 {left_out}"]
    await other._connections.execute(
        [(group_tag("room:x"), script(GROUP_BOXES_HISTORY, [procs], args))]
    )
    await other.group_send("room:x", {"type": "m", "i": 2})
    assert [(await receive(layer, kept))["offset"] for _ in range(2)] == [1, 2]
    assert (await receive(layer, left_out))["offset"] == 2


async def test_groups_without_history_store_nothing(layers):
    layer = layers()
    channel = await layer.new_channel()
    await layer.group_add("plain", channel)
    await layer.group_send("plain", {"type": "m"})
    assert await receive(layer, channel) == {"type": "m"}
    client = layer._connections.command_client(group_tag("plain"))
    keys = {k async for k in client.scan_iter(match=f"{layer.prefix}:{{g.*")}
    # the box set only: no history keys, and no presence entry for a
    # membership without metadata
    assert keys == {f"{layer.prefix}:{{g.plain}}:p".encode()}
    history = await layer.group_history("plain")
    assert (history.epoch, history.offset, history.recovered) == ("", 0, False)


async def test_history_checks_its_arguments(layers):
    layer = layers()
    with pytest.raises(TypeError, match="since"):
        await layer.group_history("room:a", since="nope")
    with pytest.raises(TypeError, match="limit"):
        await layer.group_history("room:a", limit=0)
