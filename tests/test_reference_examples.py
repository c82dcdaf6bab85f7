"""Every example of the Aether Channels reference (../shared/reference/
aether-channels-api.md), translated to Python and run with its counts asserted.

Kotlin `session.id` is a channel name here (a consumer's `channel_name`, or one from
`layer.new_channel()`), and a Kotlin WebSocket handler is a Channels consumer.
"""

import asyncio
import json
import uuid

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from aether_compat import ChannelMessage, Channels, SendResult
from aether_compat.layers import InMemoryChannelLayer
from tests.support.facade import Inbox, as_default_layer, assert_nothing, receive


async def sessions(layer, count):
    """`count` Kotlin-style sessions: a channel each, with a registered sender."""
    made = []
    for _ in range(count):
        session_id, inbox = await layer.new_channel(), Inbox()
        await Channels.register_session(session_id, inbox)
        made.append((session_id, inbox))
    return made


# Basic Usage: setting up the channel layer


async def test_setting_up_the_channel_layer():
    # Channels.configure(InMemoryChannelLayer())
    Channels.configure(InMemoryChannelLayer())
    session_id = await Channels.layer.new_channel()
    await Channels.group_add("room:setup", session_id)
    assert (await Channels.group("room:setup").broadcast("hi")).sent_count == 1
    # val channelLayer = InMemoryChannelLayer()
    channel_layer = InMemoryChannelLayer()
    await channel_layer.group_add("room:own", session_id)
    assert await channel_layer.group_send("room:own", {"type": "x"}) == SendResult(1)


# Basic Usage: managing group membership


class ChatRoomConsumer(AsyncWebsocketConsumer):
    """`ws("/chat/:room")`: join `room:<room>`, broadcast each text frame to it, leave
    on disconnect."""

    results: list[SendResult] = []

    async def connect(self):
        self.group = f"room:{self.scope['url_route']['kwargs']['room']}"
        await Channels.group_add(self.group, self.channel_name)
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            self.results.append(await Channels.group(self.group).broadcast(text_data))

    async def disconnect(self, code):
        await Channels.group_discard(self.group, self.channel_name)

    async def aether_message(self, event):
        await self.send(text_data=event["text"])


chat_app = URLRouter([path("chat/<room>/", ChatRoomConsumer.as_asgi())])


async def test_managing_group_membership(facade_layer):
    ChatRoomConsumer.results = []
    with as_default_layer(facade_layer):
        ann = WebsocketCommunicator(chat_app, "/chat/general/")
        bob = WebsocketCommunicator(chat_app, "/chat/general/")
        assert (await ann.connect())[0]
        assert (await bob.connect())[0]
        assert len(await Channels.group_members("room:general")) == 2
        await ann.send_to(text_data="hello")
        assert await ann.receive_from() == "hello"
        assert await bob.receive_from() == "hello"
        await bob.disconnect()
        assert len(await Channels.group_members("room:general")) == 1
        await ann.send_to(text_data="anyone?")
        assert await ann.receive_from() == "anyone?"
        await ann.disconnect()
    assert ChatRoomConsumer.results == [SendResult(2), SendResult(1)]
    assert await Channels.group_members("room:general") == set()


# Basic Usage: broadcasting messages


async def test_broadcasting_messages(facade_layer):
    (session_id, inbox), (other_id, other) = await sessions(facade_layer, 2)
    queued = await facade_layer.new_channel()
    for member in (session_id, other_id, queued):
        await Channels.group_add("room:general", member)
    general = Channels.group("room:general")
    user_id = "user-42"

    assert (await general.broadcast("Hello everyone!")).sent_count == 3
    assert (await general.broadcast(message="Hello!", sender=user_id)).sent_count == 3
    image_bytes = bytes(range(256))
    assert (await general.broadcast_binary(image_bytes)).sent_count == 3
    assert await Channels.send(session_id, "Private message") is True

    expected = ["Hello everyone!", "Hello!", image_bytes]
    assert await inbox.wait_for(4) == [*expected, "Private message"]
    assert await other.wait_for(3) == expected
    events = [await receive(facade_layer, queued) for _ in range(3)]
    assert [e.get("sender") for e in events] == [None, user_id, None]
    await assert_nothing(facade_layer, queued)


# Channel Layer Interface: our layers implement it under Python names


async def test_channel_layer_interface(layer):
    session_id, inbox = await layer.new_channel(), Inbox()
    await layer.group_add("room:if", session_id)  # groupAdd
    assert await layer.group_members("room:if") == {session_id}  # groupMembers
    result = await layer.group_send("room:if", {"type": "aether.message", "text": "t"})
    assert result == SendResult(1)  # groupSend -> SendResult
    binary = {"type": "aether.message", "bytes": b"b"}
    assert await layer.group_send("room:if", binary) == SendResult(1)  # ...Binary
    await layer.send(session_id, {"type": "aether.message", "text": "direct"})  # send
    assert [(await receive(layer, session_id)).get("text") for _ in range(3)] == [
        "t",
        None,
        "direct",
    ]

    async def sender(event):  # registerSession: the layer passes whole events
        await inbox(event["text"])

    await layer.register_session(session_id, sender)
    await layer.send(session_id, {"type": "aether.message", "text": "to sender"})
    assert await inbox.wait_for(1) == ["to sender"]
    await layer.unregister_session(session_id)  # unregisterSession
    await layer.group_discard("room:if", session_id)  # groupDiscard
    assert await layer.group_members("room:if") == set()


# SendResult


async def test_send_result(facade_layer):
    members = await sessions(facade_layer, 3)
    for session_id, _ in members:
        await Channels.group_add("room:lobby", session_id)
    result = await Channels.group("room:lobby").broadcast("Hello!")
    line = f"Sent to {result.sent_count} clients, {result.failed_count} failed"
    assert line == "Sent to 3 clients, 0 failed"

    await Channels.register_session(members[0][0], Inbox(fail_with=OSError("closed")))
    result = await Channels.group("room:lobby").broadcast("Hello!")
    line = f"Sent to {result.sent_count} clients, {result.failed_count} failed"
    assert line == "Sent to 2 clients, 1 failed"
    (error,) = result.errors
    assert "closed" in str(error)


# ChannelMessage


async def test_channel_message(facade_layer):
    ((session_id, inbox),) = await sessions(facade_layer, 1)
    await Channels.group_add("room:general", session_id)
    user_id = "user-42"
    message = ChannelMessage(
        type="chat.message",
        payload=json.dumps({"text": "Hello!"}),
        sender=user_id,
        target="room:general",
    )
    general = Channels.group("room:general")
    assert (await general.broadcast(message.to_json())).sent_count == 1
    assert (await general.broadcast(message)).sent_count == 1
    for text in await inbox.wait_for(2):
        received = ChannelMessage.from_json(text)
        assert received == message
        assert json.loads(received.payload) == {"text": "Hello!"}


# The Channels singleton


async def test_the_channels_singleton():
    Channels.configure(InMemoryChannelLayer())
    ((session_id, inbox),) = await sessions(Channels.layer, 1)
    await Channels.group_add("notifications:user:123", session_id)
    notification = json.dumps({"title": "New follower"})
    result = await Channels.group("notifications:user:123").broadcast(notification)
    assert result == SendResult(1)
    assert await inbox.wait_for(1) == [notification]


# Group Patterns


async def test_pattern_chat_rooms(facade_layer):
    room_id = "42"
    (ann, ann_inbox), (bob, bob_inbox) = await sessions(facade_layer, 2)
    await Channels.group_add(f"chat:{room_id}", ann)
    await Channels.group_add(f"chat:{room_id}", bob)
    assert (await Channels.group(f"chat:{room_id}").broadcast("hi all")).sent_count == 2
    await Channels.group_discard(f"chat:{room_id}", bob)
    assert (
        await Channels.group(f"chat:{room_id}").broadcast("just ann")
    ).sent_count == 1
    assert await ann_inbox.wait_for(2) == ["hi all", "just ann"]
    assert bob_inbox.items == ["hi all"]


async def test_pattern_user_notifications(facade_layer):
    (phone, phone_inbox), (laptop, laptop_inbox), (other, other_inbox) = await sessions(
        facade_layer, 3
    )
    for device in (phone, laptop):
        await Channels.group_add("user:42", device)
    await Channels.group_add("user:7", other)
    result = await Channels.group("user:42").broadcast("You have mail")
    assert result == SendResult(2)
    assert await phone_inbox.wait_for(1) == ["You have mail"]
    assert await laptop_inbox.wait_for(1) == ["You have mail"]
    assert other_inbox.items == []


async def test_pattern_live_dashboard(facade_layer):
    dashboards = await sessions(facade_layer, 2)
    for session_id, _ in dashboards:
        await Channels.group_add("dashboard:admin", session_id)
    stats_update = {"online": 17, "messages_per_second": 3.5}
    result = await Channels.group("dashboard:admin").broadcast(json.dumps(stats_update))
    assert result == SendResult(2)
    for _, inbox in dashboards:
        assert [json.loads(t) for t in await inbox.wait_for(1)] == [stats_update]


async def test_pattern_presence(facade_layer):
    room_id = uuid.uuid4().hex[:8]
    users = await sessions(facade_layer, 3)
    for session_id, _ in users:
        await Channels.group_add(f"room:{room_id}", session_id)
    online_users = await Channels.group_members(f"room:{room_id}")
    assert f"{len(online_users)} users online" == "3 users online"
    assert online_users == {session_id for session_id, _ in users}
    await Channels.group_discard(f"room:{room_id}", users[0][0])
    assert len(await Channels.group_members(f"room:{room_id}")) == 2


# Integration with WebSockets


class RealtimeConsumer(AsyncWebsocketConsumer):
    """`ws("/realtime")`: register the session, join `user:<id>`, then run the
    join/leave/send commands the client sends."""

    async def connect(self):
        user_id = self.scope.get("user_id")
        if user_id is None:
            await self.close()
            return
        await self.accept()
        await Channels.register_session(self.channel_name, self.send_text)
        self.joined = {f"user:{user_id}"}
        await Channels.group_add(f"user:{user_id}", self.channel_name)

    async def send_text(self, message):
        await self.send(text_data=message)

    async def receive(self, text_data=None, bytes_data=None):
        cmd = json.loads(text_data)
        if cmd["action"] == "join":
            self.joined.add(cmd["group"])
            await Channels.group_add(cmd["group"], self.channel_name)
        elif cmd["action"] == "leave":
            self.joined.discard(cmd["group"])
            await Channels.group_discard(cmd["group"], self.channel_name)
        elif cmd["action"] == "send":
            await Channels.group(cmd["group"]).broadcast(cmd["message"])

    async def disconnect(self, code):
        if hasattr(self, "joined"):  # best practice 2: always clean up
            for group in self.joined:
                await Channels.group_discard(group, self.channel_name)
            await Channels.unregister_session(self.channel_name)


def as_user(user_id):
    app = RealtimeConsumer.as_asgi()

    async def with_user(scope, receive, send):
        await app({**scope, "user_id": user_id}, receive, send)

    return with_user


async def members_reach(channels, group, count):
    """Wait until `group` has `count` members (commands on different sockets are
    carried out in no set order)."""
    async with asyncio.timeout(3):
        while True:
            if len(await channels.group_members(group)) >= count:
                return
            await asyncio.sleep(0.01)  # the layer's state, polled


async def test_integration_with_websockets(facade_layer):
    with as_default_layer(facade_layer):
        stranger = WebsocketCommunicator(as_user(None), "/realtime")
        assert (await stranger.connect())[0] is False
        ann = WebsocketCommunicator(as_user("42"), "/realtime")
        bob = WebsocketCommunicator(as_user("7"), "/realtime")
        assert (await ann.connect())[0]
        assert (await bob.connect())[0]
        assert len(await Channels.group_members("user:42")) == 1

        for client in (ann, bob):
            await client.send_json_to({"action": "join", "group": "room:1"})
        await members_reach(Channels, "room:1", 2)  # joins on two sockets: no order
        await ann.send_json_to({"action": "send", "group": "room:1", "message": "hi"})
        assert await ann.receive_from() == "hi"
        assert await bob.receive_from() == "hi"
        assert await Channels.group("user:42").broadcast("ping") == SendResult(1)
        assert await ann.receive_from() == "ping"

        await ann.send_json_to({"action": "leave", "group": "room:1"})
        await bob.send_json_to({"action": "send", "group": "room:1", "message": "yo"})
        assert await bob.receive_from() == "yo"
        assert await ann.receive_nothing()
        await ann.disconnect()
        await bob.disconnect()
    assert await Channels.group_members("user:42") == set()
    assert await Channels.group_members("room:1") == set()


# Scaling Considerations: the Redis layer shared by two servers


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_scaling_with_the_redis_layer(make_layer):
    prefix = f"test-scale-{uuid.uuid4().hex[:8]}"
    server_a, server_b = make_layer(prefix=prefix), make_layer(prefix=prefix)
    Channels.configure(server_a)
    on_b = await server_b.new_channel()
    await server_b.group_add("room:scaled", on_b)
    assert await Channels.group("room:scaled").broadcast("across") == SendResult(1)
    assert (await receive(server_b, on_b))["text"] == "across"
    assert await Channels.group_members("room:scaled") == {on_b}
