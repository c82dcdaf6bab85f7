"""One member's trouble stays that member's: a session that hangs, raises (also
`CancelledError`) or is slow is a counted, named failure within the delivery
deadline, on the loop it lives on, and nobody else waits for it. Any thread may
call the layers. A slow but live reader keeps its groups."""

import asyncio
import threading
import time

import pytest

from aether_compat import Channels, SessionSendFailed
from tests.support.layers import build_layer

DEADLINE = 0.5


class Recorder:
    """A session sender that records what it got and on which thread."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.threads: set[int] = set()
        self.arrived = asyncio.Event()

    async def __call__(self, message: dict) -> None:
        self.items.append(message)
        self.threads.add(threading.get_ident())
        self.arrived.set()


async def hang(message: dict) -> None:
    await asyncio.Event().wait()


async def cancelled(message: dict) -> None:
    task = asyncio.ensure_future(asyncio.sleep(10))
    task.cancel()
    await task  # raises CancelledError, as awaiting a cancelled task does


async def group_of(layer, group, senders):
    """Channels with these senders registered (None: a plain receive() channel)."""
    channels = []
    for sender in senders:
        channel = await layer.new_channel()
        if sender is not None:
            await layer.register_session(channel, sender)
        await layer.group_add(group, channel)
        channels.append(channel)
    return channels


@pytest.mark.parametrize("trouble", [hang, cancelled], ids=["hangs", "cancelled"])
async def test_broadcast_returns_within_the_deadline(make_layer, trouble):
    """A member whose sender hangs or raises CancelledError is one named failure;
    the members after it get the message and the call returns in time."""
    layer = make_layer(delivery_timeout=DEADLINE)
    first, last = Recorder(), Recorder()
    _, bad, _ = await group_of(layer, "g", [first, trouble, last])
    started = time.monotonic()
    result = await layer.group_send("g", {"type": "x"})
    assert time.monotonic() - started < DEADLINE + 0.4
    assert (result.sent_count, result.failed_count) == (2, 1)
    (error,) = result.errors
    assert isinstance(error, SessionSendFailed)
    assert error.channel == bad
    assert first.items == last.items == [{"type": "x"}]


async def test_direct_send_to_a_hanging_session_fails_in_time(make_layer):
    layer = make_layer(delivery_timeout=DEADLINE)
    (channel,) = await group_of(layer, "g", [hang])
    with pytest.raises(SessionSendFailed, match="did not return within"):
        async with asyncio.timeout(DEADLINE + 0.4):
            await layer.send(channel, {"type": "x"})


async def test_facade_send_to_a_hanging_session_is_false_in_time(make_layer):
    layer = make_layer(delivery_timeout=DEADLINE)
    Channels.configure(layer)
    (channel,) = await group_of(layer, "g", [hang])
    async with asyncio.timeout(DEADLINE + 0.4):
        assert await Channels.send(channel, "hello") is False


async def test_a_hung_session_keeps_its_order_and_refuses_past_capacity():
    """Messages for a session whose first delivery is stuck queue behind it, up
    to its capacity; more are ChannelFull, and nobody else waits. (The queue is
    the sessions table's, shared by both layers; concurrent group_sends have an
    order only in memory, where none waits for Redis.)"""
    layer = build_layer("memory", delivery_timeout=5, capacity=2)
    release = asyncio.Event()
    got = []

    async def slow(message):
        if not got:
            got.append("first")
            await release.wait()
        got.append(message["n"])

    await group_of(layer, "g", [slow])
    sends = [asyncio.create_task(layer.group_send("g", {"n": n})) for n in range(4)]
    async with asyncio.timeout(3):
        refused = await sends[3]  # two wait behind the stuck one: the fourth is full
    assert (refused.sent_count, refused.failed_count) == (0, 1)
    assert "is full" in str(refused.errors[0])
    release.set()
    results = await asyncio.gather(*sends[:3])
    assert [r.sent_count for r in results] == [1, 1, 1]
    assert got == ["first", 0, 1, 2]


REDIS_ONLY = pytest.mark.parametrize("backend", ["redis"], indirect=True)


@REDIS_ONLY
async def test_a_hanging_session_does_not_stall_its_process(make_layer):
    """Redis: the process's pump hands messages to sessions without waiting for
    them, so its other channels keep receiving while one session hangs."""
    owner = make_layer(delivery_timeout=DEADLINE)
    sender = make_layer(prefix=owner.prefix)
    recorder = Recorder()
    _, _, plain = await group_of(owner, "g", [hang, recorder, None])
    for n in range(3):
        await sender.group_send("g", {"n": n})
    async with asyncio.timeout(3):
        got = [await owner.receive(plain) for _ in range(3)]
        while len(recorder.items) < 3:
            recorder.arrived.clear()
            await recorder.arrived.wait()
    assert got == recorder.items == [{"n": 0}, {"n": 1}, {"n": 2}]


@REDIS_ONLY
async def test_pump_deliveries_to_a_slow_session_keep_their_order(make_layer):
    """Redis: messages from another process reach a session whose first delivery
    is slow in the order they were sent, while the pump moves on."""
    owner = make_layer(delivery_timeout=5)
    sender = make_layer(prefix=owner.prefix)
    release, got, recorder = asyncio.Event(), [], Recorder()
    all_in = asyncio.Event()

    async def slow(message):
        if not got:
            await release.wait()
        got.append(message["n"])
        if len(got) == 4:
            all_in.set()

    await group_of(owner, "g", [slow, recorder])
    for n in range(4):
        await sender.group_send("g", {"n": n})
    async with asyncio.timeout(3):
        while len(recorder.items) < 4:  # the pump went on past the slow session
            recorder.arrived.clear()
            await recorder.arrived.wait()
        release.set()
        await all_in.wait()
    assert got == [0, 1, 2, 3]


@REDIS_ONLY
async def test_cancelled_error_from_a_sender_keeps_the_pump(make_layer):
    """Redis, a process with sessions only (consumers never call receive()): a
    sender raising CancelledError does not end the pump for good."""
    owner = make_layer(delivery_timeout=DEADLINE)
    sender = make_layer(prefix=owner.prefix)
    recorder = Recorder()
    await group_of(owner, "g", [cancelled, recorder])
    for n in range(3):
        await sender.group_send("g", {"n": n})
    async with asyncio.timeout(3):
        while len(recorder.items) < 3:
            recorder.arrived.clear()
            await recorder.arrived.wait()
    assert recorder.items == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_a_thread_broadcast_runs_senders_on_their_own_loop(make_layer):
    """`Channels.sync` from a plain thread: each sender runs on the loop it was
    registered on (here, the test's), not on the thread's short-lived loop."""
    layer = make_layer()
    Channels.configure(layer)
    recorder = Recorder()
    await group_of(layer, "room:t", [recorder])
    result = await asyncio.to_thread(Channels.sync.group("room:t").broadcast, "hi")
    assert (result.sent_count, result.failed_count) == (1, 0)
    assert recorder.threads == {threading.get_ident()}


async def test_joins_and_leaves_while_threads_broadcast(make_layer):
    """Members join and leave on the loop while two threads broadcast: no call
    raises, and the summed sent counts equal what the readers got."""
    layer = make_layer(capacity=10_000)
    readers = await group_of(layer, "busy", [None] * 20)
    per_worker = 500  # two workers stay below every reader's capacity

    def broadcast() -> int:
        sent = 0
        for _ in range(per_worker):
            result = Channels.sync.group("busy").broadcast("x")
            assert result.failed_count == 0, result.errors
            sent += result.sent_count
        return sent

    Channels.configure(layer)
    workers = [asyncio.ensure_future(asyncio.to_thread(broadcast)) for _ in range(2)]
    rounds = 0
    while rounds < 200 or not all(worker.done() for worker in workers):
        channel = readers[rounds % len(readers)]
        await layer.group_discard("busy", channel)
        await layer.group_members("busy")
        await layer.group_add("busy", channel)
        rounds += 1
        # Wait on the workers a moment between rounds: a loop that never blocks
        # starves the worker threads of the GIL.
        await asyncio.wait(workers, timeout=0.002)
    sent = sum(await asyncio.gather(*workers))
    assert sent > 0
    received = 0
    pending = {asyncio.ensure_future(layer.receive(c)): c for c in readers}
    try:
        async with asyncio.timeout(60):  # a bound for a broken layer, not a wait
            while received < sent:
                done, _ = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
                for task in done:
                    task.result()
                    received += 1
                    channel = pending.pop(task)
                    pending[asyncio.ensure_future(layer.receive(channel))] = channel
    finally:
        for task in pending:
            task.cancel()
    assert received == sent
    for channel in readers:  # and nothing more than was counted
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await layer.receive(channel)


@pytest.mark.slow
async def test_a_slow_reader_keeps_its_groups(make_layer):
    """channels_redis' own expectation (its test_message_expiry__group_send):
    expiry 3 s, three group messages 2 s apart, the member reads after the third:
    the second and third arrive, and it is still a member."""
    layer = make_layer(expiry=3)
    (channel,) = await group_of(layer, "g", [None])
    for n in (1, 2, 3):
        if n > 1:
            await asyncio.sleep(2)  # the clock is the subject here
        await layer.group_send("g", {"type": f"message.{n}"})
    async with asyncio.timeout(2):
        assert (await layer.receive(channel))["type"] == "message.2"
        assert (await layer.receive(channel))["type"] == "message.3"
    assert channel in await layer.group_members("g")
