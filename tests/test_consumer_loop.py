"""The one-task dispatch loop of session consumers (`consumer_loop.py`): client
frames and layer events dispatched one at a time, in order, the inbox bounded,
and a connected `AetherConsumer` holding no task beyond its `receive()` reader."""

import asyncio

import pytest
from channels.exceptions import StopConsumer
from channels.testing import WebsocketCommunicator

from aether_compat import Channels
from aether_compat.consumer_loop import Inbox, dispatch_loop
from aether_compat.consumers import AetherConsumer
from tests.support.facade import as_default_layer


def test_the_inbox_is_bounded_and_holds_no_deque_while_empty():
    inbox = Inbox(2)
    assert inbox.items is None
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    with pytest.raises(asyncio.QueueFull):
        inbox.put_nowait({"n": 3})
    assert [inbox.take(), inbox.take(), inbox.take()] == [{"n": 1}, {"n": 2}, None]
    assert inbox.items is None


async def test_frames_and_events_are_dispatched_in_order_one_at_a_time():
    frames: asyncio.Queue[dict] = asyncio.Queue()
    inbox = Inbox(10)
    seen: list[str] = []
    running = 0

    async def dispatch(message: dict) -> None:
        nonlocal running
        running += 1
        assert running == 1, "two handlers ran at once"
        await asyncio.sleep(0)  # a handler that suspends
        seen.append(message["n"])
        if message["n"] == "frame-1":
            inbox.put_nowait({"n": "event-2"})  # comes while a handler runs
            inbox.put_nowait({"n": "event-3"})
        if message["n"] == "event-3":
            await frames.put({"n": "stop"})
        if message["n"] == "stop":
            raise StopConsumer
        running -= 1

    inbox.put_nowait({"n": "event-0"})
    await frames.put({"n": "frame-1"})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_loop(frames.get, inbox, dispatch), 5)
    # The first read has not run yet when the loop starts: the waiting event
    # goes first; the events keep their order, the frames theirs.
    assert seen == ["event-0", "frame-1", "event-2", "event-3", "stop"]


async def test_the_reader_task_is_cancelled_when_the_loop_ends():
    reads: list[asyncio.Task] = []
    never: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def receive() -> dict:
        reads.append(asyncio.current_task())
        return await never

    async def dispatch(message: dict) -> None:
        raise StopConsumer

    inbox = Inbox(10)
    reading = asyncio.Event()

    async def receive_and_tell() -> dict:
        reading.set()
        return await receive()

    loop_task = asyncio.ensure_future(dispatch_loop(receive_and_tell, inbox, dispatch))
    await asyncio.wait_for(reading.wait(), 5)
    inbox.put_nowait({"type": "anything"})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(loop_task, 5)
    assert reads[0].cancelled()


class Roomed(AetherConsumer):
    groups = ["room:loop"]


async def test_a_connected_consumer_adds_one_task_and_gets_layer_events(make_layer):
    layer = make_layer()
    with as_default_layer(layer):
        before = len(asyncio.all_tasks())
        communicators = []
        for _ in range(20):
            communicator = WebsocketCommunicator(
                Roomed.as_asgi(), "/ws/", subprotocols=["aether.v1"]
            )
            assert (await communicator.connect())[0]
            communicators.append(communicator)
        # Per connection: the communicator's application task and our reader
        # (a Redis layer adds a few tasks of its own, once).
        assert len(asyncio.all_tasks()) - before <= 2 * len(communicators) + 4
        result = await Channels.group("room:loop").broadcast("hello")
        assert result.sent_count == len(communicators)
        for communicator in communicators:
            assert "hello" in await communicator.receive_from(2)
            await communicator.disconnect()
