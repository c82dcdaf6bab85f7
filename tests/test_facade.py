"""The Channels facade over our layers (every backend): broadcasts with counts,
send() -> bool, sessions, presence, and what the events look like to a consumer."""

import json

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from aether_compat import (
    ChannelFull,
    ChannelMessage,
    Channels,
    Group,
    SendResult,
    SessionSendFailed,
)
from aether_compat.layers import InMemoryChannelLayer
from tests.support.facade import Inbox, as_default_layer, receive


async def members(layer, group, count):
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await Channels.group_add(group, channel)
    return channels


# Which layer


def test_default_is_djangos_layer():
    """Without configure(), the facade uses get_channel_layer() (CHANNEL_LAYERS)."""
    assert Channels.layer is get_channel_layer()
    assert isinstance(Channels.layer, InMemoryChannelLayer)


def test_configure_overrides_and_none_restores():
    mine = InMemoryChannelLayer()
    Channels.configure(mine)
    assert Channels.layer is mine
    Channels.configure(None)
    assert Channels.layer is get_channel_layer()


def test_no_layer_at_all_says_how_to_configure_one():
    with (
        override_settings(CHANNEL_LAYERS={}),
        pytest.raises(ImproperlyConfigured, match=r"CHANNEL_LAYERS.*configure"),
    ):
        _ = Channels.layer


def test_configure_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="needs a channel layer"):
        Channels.configure("redis://localhost")


# Broadcasts


async def test_broadcast_reaches_every_member_with_its_sender(facade_layer):
    a, b, c = await members(facade_layer, "room:general", 3)
    result = await Channels.group("room:general").broadcast("Hello!", sender="u1")
    assert result == SendResult(3, 0, ())
    for channel in (a, b, c):
        assert await receive(facade_layer, channel) == {
            "type": "aether.message",
            "text": "Hello!",
            "sender": "u1",
            "group": "room:general",
        }


async def test_broadcast_binary_travels_as_bytes(facade_layer):
    (a,) = await members(facade_layer, "room:img", 1)
    result = await Channels.group("room:img").broadcast_binary(b"\x89PNG\x00")
    assert result == SendResult(1, 0, ())
    event = await receive(facade_layer, a)
    assert event == {
        "type": "aether.message",
        "bytes": b"\x89PNG\x00",
        "sender": None,
        "group": "room:img",
    }


async def test_broadcast_to_an_empty_group_counts_nothing(facade_layer):
    result = await Channels.group("room:empty").broadcast("anyone?")
    assert (result.sent_count, result.failed_count, result.ok) == (0, 0, True)


async def test_full_member_is_a_counted_failure(make_layer):
    """A member at capacity is failed_count=1 with a ChannelFull naming it; the others
    still get the message."""
    layer = make_layer(capacity=1)
    Channels.configure(layer)
    a, b, full = await members(layer, "room:busy", 3)
    assert await Channels.send(full, "fills it") is True
    result = await Channels.group("room:busy").broadcast("hi")
    assert (result.sent_count, result.failed_count) == (2, 1)
    (error,) = result.errors
    assert isinstance(error, ChannelFull)
    assert full in str(error)
    for channel in (a, b):
        assert (await receive(layer, channel))["text"] == "hi"
    assert (await receive(layer, full))["text"] == "fills it"


async def test_raising_sender_is_a_counted_failure(facade_layer):
    boom = RuntimeError("socket closed")
    ok, broken = Inbox(), Inbox(fail_with=boom)
    a, b, queued = await members(facade_layer, "room:mixed", 3)
    await Channels.register_session(a, ok)
    await Channels.register_session(b, broken)
    result = await Channels.group("room:mixed").broadcast("hi")
    assert (result.sent_count, result.failed_count) == (2, 1)
    assert len(result.errors) == 1
    assert boom in (result.errors[0], result.errors[0].__cause__)
    assert await ok.wait_for(1) == ["hi"]
    assert (await receive(facade_layer, queued))["text"] == "hi"


async def test_channel_message_goes_as_its_json_with_its_sender(facade_layer):
    (a,) = await members(facade_layer, "room:general", 1)
    message = ChannelMessage(
        type="chat.message",
        payload=json.dumps({"text": "Hello!"}),
        sender="user-7",
        target="room:general",
    )
    assert (await Channels.group("room:general").broadcast(message)).sent_count == 1
    event = await receive(facade_layer, a)
    assert event["sender"] == "user-7"
    assert ChannelMessage.from_json(event["text"]) == message
    await Channels.group("room:general").broadcast(message, sender="override")
    assert (await receive(facade_layer, a))["sender"] == "override"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda: Channels.group("room:x").broadcast(b"x"),
            "broadcast_binary",
            id="bytes",
        ),
        pytest.param(
            lambda: Channels.group("room:x").broadcast(42),
            "str or ChannelMessage",
            id="int",
        ),
        pytest.param(
            lambda: Channels.group("room:x").broadcast_binary("x"),
            "takes bytes",
            id="str",
        ),
        pytest.param(
            lambda: Channels.group("room:x").broadcast("x", sender=5),
            "sender",
            id="sender",
        ),
        pytest.param(lambda: Channels.group("room lobby"), "Group name", id="space"),
        pytest.param(
            lambda: Channels.group_add("room:x", "no spaces"),
            "Channel name",
            id="member",
        ),
        pytest.param(
            lambda: Channels.group_members("a" * 100), "length < 100", id="too-long"
        ),
    ],
)
async def test_bad_input_raises_type_error_with_the_rule(facade_layer, call, match):
    with pytest.raises(TypeError, match=match):
        await call()


def test_group_is_a_value():
    assert Channels.group("room:1") == Group("room:1")
    assert Channels.group("room:1") != Channels.group("room:2")
    assert repr(Channels.group("room:1")) == "Group('room:1')"


# Direct sends


async def test_send_queues_and_says_true(facade_layer):
    channel = await facade_layer.new_channel()
    assert await Channels.send(channel, "Private message") is True
    assert (await receive(facade_layer, channel))["text"] == "Private message"


async def test_send_to_full_channel_says_false(make_layer):
    Channels.configure(make_layer(capacity=1))
    channel = await Channels.layer.new_channel()
    assert await Channels.send(channel, "one") is True
    assert await Channels.send(channel, "two") is False
    assert (await receive(Channels.layer, channel))["text"] == "one"


async def test_send_to_raising_sender_says_false(facade_layer):
    channel = await facade_layer.new_channel()
    await Channels.register_session(channel, Inbox(fail_with=OSError("gone")))
    assert await Channels.send(channel, "hi") is False


async def test_send_with_invalid_name_raises(facade_layer):
    with pytest.raises(TypeError, match="Channel name must be"):
        await Channels.send("not a channel", "hi")
    with pytest.raises(TypeError, match="str or ChannelMessage"):
        await Channels.send(await facade_layer.new_channel(), b"bytes")


# Sessions


async def test_session_sender_gets_text_and_bytes(facade_layer):
    inbox = Inbox()
    channel = await facade_layer.new_channel()
    await Channels.register_session(channel, inbox)
    await Channels.group_add("user:42", channel)
    assert await Channels.send(channel, "direct") is True
    assert (await Channels.group("user:42").broadcast("group")).sent_count == 1
    assert (await Channels.group("user:42").broadcast_binary(b"\x00\x01")).ok
    assert await inbox.wait_for(3) == ["direct", "group", b"\x00\x01"]


async def test_a_plain_function_may_be_a_sender(facade_layer):
    got = []
    channel = await facade_layer.new_channel()
    await Channels.register_session(channel, got.append)
    assert await Channels.send(channel, "hi") is True
    assert got == ["hi"]


async def test_unregistered_session_queues_again(facade_layer):
    inbox = Inbox()
    channel = await facade_layer.new_channel()
    await Channels.register_session(channel, inbox)
    await Channels.unregister_session(channel)
    assert await Channels.send(channel, "queued") is True
    assert (await receive(facade_layer, channel))["text"] == "queued"
    assert inbox.items == []


async def test_session_refuses_other_events_as_a_counted_failure(facade_layer):
    """A facade session takes only aether.message: another event type is a failure
    that says so, not a silent drop."""
    inbox = Inbox()
    channel = await facade_layer.new_channel()
    await Channels.register_session(channel, inbox)
    await Channels.group_add("room:raw", channel)
    result = await facade_layer.group_send("room:raw", {"type": "chat.message"})
    assert (result.sent_count, result.failed_count) == (0, 1)
    (error,) = result.errors
    assert isinstance(error, SessionSendFailed)
    assert error.channel == channel
    cause = error.__cause__
    assert isinstance(cause, TypeError)
    assert "takes only 'aether.message' events" in str(cause)
    assert inbox.items == []


async def test_register_session_needs_a_callable(facade_layer):
    with pytest.raises(TypeError, match="async callable"):
        await Channels.register_session(await facade_layer.new_channel(), "nope")


# Membership and presence


async def test_members_come_and_go(facade_layer):
    a, b = await members(facade_layer, "room:presence", 2)
    assert await Channels.group_members("room:presence") == {a, b}
    await Channels.group_discard("room:presence", a)
    await Channels.group_discard("room:presence", a)
    assert await Channels.group_members("room:presence") == {b}
    assert await facade_layer.group_members("room:presence") == {b}


async def test_colon_names_are_native_on_our_layers(facade_layer):
    """Our layers take `room:lobby` as is: plain layer calls meet facade calls."""
    (a,) = await members(facade_layer, "room:lobby", 1)
    assert await facade_layer.group_members("room:lobby") == {a}


# A plain consumer with an aether_message handler


class RoomConsumer(AsyncWebsocketConsumer):
    """The README's handler: facade broadcasts arrive as `aether.message` events."""

    async def connect(self):
        await Channels.group_add("room:lobby", self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await Channels.group_discard("room:lobby", self.channel_name)

    async def aether_message(self, event):
        if "text" in event:
            frame = {"from": event["sender"], "text": event["text"]}
            await self.send(text_data=json.dumps(frame))
        else:
            await self.send(bytes_data=event["bytes"])


async def test_plain_consumer_receives_facade_broadcasts(facade_layer):
    with as_default_layer(facade_layer):
        client = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/room/")
        assert (await client.connect())[0]
        room = Channels.group("room:lobby")
        assert (await room.broadcast("hi", sender="ann")).sent_count == 1
        assert json.loads(await client.receive_from()) == {"from": "ann", "text": "hi"}
        assert (await room.broadcast_binary(b"\x01\x02")).sent_count == 1
        assert (await client.receive_output(timeout=2))["bytes"] == b"\x01\x02"
        await client.disconnect()
        assert await Channels.group_members("room:lobby") == set()
        assert (await room.broadcast("nobody")).total == 0
