"""Channels' own consumers on our layers, configured only through CHANNEL_LAYERS."""

import json

import pytest
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from aether_compat.layers import InMemoryChannelLayer

MEMORY = {"default": {"BACKEND": "aether_compat.layers.InMemoryChannelLayer"}}


class ChatConsumer(AsyncWebsocketConsumer):
    groups = ["chat"]

    async def chat_message(self, event):
        await self.send(text_data=event["text"])


class DynamicConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add("room:dynamic", self.channel_name)
        await self.accept()

    async def receive_json(self, content):
        await self.channel_layer.group_send(
            "room:dynamic", {"type": "relay", "body": content}
        )

    async def relay(self, event):
        await self.send_json(event["body"])

    async def disconnect(self, code):
        await self.channel_layer.group_discard("room:dynamic", self.channel_name)


@pytest.fixture
def memory_layers():
    with override_settings(CHANNEL_LAYERS=MEMORY):
        yield


@pytest.mark.usefixtures("memory_layers")
async def test_groups_attribute_joins_and_leaves():
    """CONTRACT.md 53: `groups = ["chat"]` joins on connect and leaves on disconnect;
    a group_send from the test reaches the consumer through the cached layer."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    connected, _ = await communicator.connect()
    assert connected
    assert len(await layer.group_members("chat")) == 1
    result = await layer.group_send("chat", {"type": "chat.message", "text": "hi"})
    assert result.sent_count == 1
    assert await communicator.receive_from() == "hi"
    await communicator.disconnect()
    assert await layer.group_members("chat") == set()
    assert (
        await layer.group_send("chat", {"type": "chat.message", "text": "x"})
    ).total == 0


@pytest.mark.usefixtures("memory_layers")
async def test_two_consumers_talk_through_a_colon_group():
    """Stock consumers may use Aether-style group names with our layer."""
    first = WebsocketCommunicator(DynamicConsumer.as_asgi(), "/ws/")
    second = WebsocketCommunicator(DynamicConsumer.as_asgi(), "/ws/")
    assert (await first.connect())[0]
    assert (await second.connect())[0]
    await first.send_json_to({"text": "hello"})
    assert await first.receive_json_from() == {"text": "hello"}
    assert await second.receive_json_from() == {"text": "hello"}
    await first.disconnect()
    await second.send_json_to({"text": "alone"})
    assert json.loads(await second.receive_from()) == {"text": "alone"}
    await second.disconnect()
    assert await get_channel_layer().group_members("room:dynamic") == set()


@pytest.mark.usefixtures("memory_layers")
def test_get_channel_layer_is_cached_and_reset_by_override():
    """CONTRACT.md 3-4: one instance per alias, replaced when the setting changes."""
    layer = get_channel_layer()
    assert get_channel_layer() is layer
    with override_settings(CHANNEL_LAYERS=MEMORY):
        assert get_channel_layer() is not layer
    config = {"default": {**MEMORY["default"], "CONFIG": {"capacity": 3}}}
    with override_settings(CHANNEL_LAYERS=config):
        assert get_channel_layer().capacity == 3
