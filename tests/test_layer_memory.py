"""Behaviour of the in-memory layer that the Redis layer does not share, and the
session and presence additions on every backend."""

import asyncio

import pytest

from aether_compat import ChannelFull, SendResult, SessionSendFailed
from aether_compat.layers import InMemoryChannelLayer
from tests.support.parking import until_parked


async def receive(layer, channel, within=2):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


# Sessions and presence, on every backend


async def test_registered_session_receives_instead_of_the_queue(layer):
    """A session's sender gets its channel's messages, direct and by group."""
    got = []

    async def sender(message):
        got.append(message)

    channel = await layer.new_channel()
    await layer.register_session(channel, sender)
    await layer.group_add("room:1", channel)
    await layer.send(channel, {"type": "direct"})
    result = await layer.group_send("room:1", {"type": "group"})
    assert result == SendResult(1, 0, ())
    assert got == [{"type": "direct"}, {"type": "group"}]


async def test_raising_session_is_a_counted_failure(layer):
    """A sender that raises is a failure carrying that exception; others still get
    the message and the caller does not crash."""
    boom = RuntimeError("socket gone")

    async def broken(message):
        raise boom

    async def fine(message):
        pass

    a, b, c = [await layer.new_channel() for _ in range(3)]
    await layer.register_session(a, broken)
    await layer.register_session(b, fine)
    for channel in (a, b, c):
        await layer.group_add("g", channel)
    result = await layer.group_send("g", {"type": "x"})
    assert (result.sent_count, result.failed_count) == (2, 1)
    (error,) = result.errors
    assert isinstance(error, SessionSendFailed)
    assert (error.channel, error.__cause__) == (a, boom)
    assert (await receive(layer, c)) == {"type": "x"}


async def test_direct_send_to_raising_session_raises_session_send_failed(layer):
    async def broken(message):
        raise ValueError("nope")

    channel = await layer.new_channel()
    await layer.register_session(channel, broken)
    with pytest.raises(SessionSendFailed, match="nope") as info:
        await layer.send(channel, {"type": "x"})
    assert isinstance(info.value.__cause__, ValueError)


async def test_unregistered_session_queues_again(layer):
    got = []

    async def sender(message):
        got.append(message)

    channel = await layer.new_channel()
    await layer.register_session(channel, sender)
    await layer.unregister_session(channel)
    await layer.send(channel, {"type": "x"})
    assert got == []
    assert (await receive(layer, channel)) == {"type": "x"}


async def test_group_members_is_presence(layer):
    """group_members lists the channels in a group now."""
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room:lobby", a)
    await layer.group_add("room:lobby", b)
    assert await layer.group_members("room:lobby") == {a, b}
    await layer.group_discard("room:lobby", a)
    assert await layer.group_members("room:lobby") == {b}
    assert await layer.group_members("room:empty") == set()
    with pytest.raises(TypeError, match="Group name"):
        await layer.group_members("bad name")


# In-memory only


async def test_expired_message_drops_a_channel_whose_reader_stopped():
    """A channel that let a message expire unread, with no reader for `expiry`
    seconds, leaves its groups; that broadcast counts it as failed, naming it."""
    layer = InMemoryChannelLayer(expiry=0.2)
    await layer.group_add("g", "dead")
    await layer.group_add("g", "alive")
    await layer.send("dead", {"type": "read once"})
    await receive(layer, "dead")  # its reader then stops
    await layer.group_send("g", {"type": "x"})
    await receive(layer, "alive")
    await asyncio.sleep(0.3)  # the clock is the subject here
    result = await layer.group_send("g", {"type": "y"})
    assert (result.sent_count, result.failed_count) == (1, 1)
    assert result.errors[0].channel == "dead"
    assert await layer.group_members("g") == {"alive"}


async def test_state_is_released_when_readers_leave():
    """No queue or group entry lingers after receivers are cancelled and members
    leave, so a long-running server does not grow."""
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(50)]
    tasks = [asyncio.create_task(layer.receive(c)) for c in channels]
    for channel in channels:
        await layer.group_add("g", channel)
    for channel in channels:
        await until_parked(layer, channel)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await layer.group_discard("g", channel)
    assert layer._channels == {}
    assert layer._groups == {}


async def test_one_shot_channels_are_forgotten_in_batches():
    """Channels emptied by a reader that never comes back are kept at most a batch
    long, so their number stays bounded however many there are."""
    from aether_compat.layers.memory_channels import IDLE_BATCH as _IDLE_BATCH

    layer = InMemoryChannelLayer()
    for n in range(3 * _IDLE_BATCH):
        await layer.send(f"once-{n}", {"type": "x"})
        await receive(layer, f"once-{n}")
    assert len(layer._channels) <= _IDLE_BATCH + 1


async def test_group_send_does_not_touch_other_channels():
    """A group_send's work is its members', not every channel's in the process: a
    full channel outside the group is neither purged nor reported."""
    layer = InMemoryChannelLayer(capacity=1)
    await layer.send("outsider", {"type": "x"})
    await layer.group_add("g", "member")
    assert await layer.group_send("g", {"type": "x"}) == SendResult(1, 0, ())
    with pytest.raises(ChannelFull):
        await layer.send("outsider", {"type": "x"})


def test_message_is_also_an_assertion_error_for_channels_compat():
    from aether_compat.errors import InvalidMessage

    assert issubclass(InvalidMessage, TypeError)
    assert issubclass(InvalidMessage, AssertionError)


async def test_send_after_expiry_retires_a_grouped_channel_is_kept():
    """A direct send to a full channel whose messages all expired is queued, not
    lost, even though the expiry drops the channel (whose reader stopped) from its
    groups."""
    layer = InMemoryChannelLayer(capacity=1, expiry=0.1)
    await layer.group_add("g", "c")
    await layer.send("c", {"n": 0})
    await receive(layer, "c")  # its reader then stops
    await layer.send("c", {"n": 1})
    await asyncio.sleep(0.2)  # the clock is the subject here
    await layer.send("c", {"n": 2})
    assert (await receive(layer, "c")) == {"n": 2}
    assert await layer.group_members("g") == set()


async def test_unregistered_sessions_leave_no_state():
    """A connection that registers a session and goes away leaves nothing behind."""
    layer = InMemoryChannelLayer()

    async def sender(message):
        pass

    for _ in range(3):
        channel = await layer.new_channel()
        await layer.register_session(channel, sender)
        await layer.group_add("room:1", channel)
        await layer.send(channel, {"type": "x"})
        await layer.group_discard("room:1", channel)
        await layer.unregister_session(channel)
    assert layer._channels == {}
    assert layer._groups == {}
