"""AetherConsumer's handshake: `get_groups()` are joined before the socket is
accepted, a join that fails rejects it, and `channel_layer_alias` picks the layer;
on every backend, through WebsocketCommunicator (#10)."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from aether_compat.facade import ChannelsFacade
from tests.support.facade import as_default_layer, as_layer

ALICE = User(pk=1, username="alice")


class RoomsConsumer(AetherConsumer):
    """Joins its user's group and a room on connect."""

    def get_groups(self):
        return [f"user:{self.user.pk}", "room:first"]


class OtherLayerConsumer(RoomsConsumer):
    channel_layer_alias = "other"


@pytest.fixture
async def layer(make_layer):
    """A fresh layer of the current backend, made Django's default layer."""
    made = make_layer()
    with as_default_layer(made):
        yield made


def joins_take_a_trip_through_the_loop(layer):
    """Every group_add yields to the event loop first, as a networked layer's does
    (the in-memory layer's would finish without letting anyone else run)."""
    group_add = layer.group_add

    async def yielding_group_add(group, channel):
        await asyncio.sleep(0)
        await group_add(group, channel)

    layer.group_add = yielding_group_add


def fail_joins_to(layer, failing):
    group_add = layer.group_add

    async def failing_group_add(group, channel):
        if group == failing:
            raise ConnectionError("the layer is down")
        await group_add(group, channel)

    layer.group_add = failing_group_add


def communicator_of(consumer, user=ALICE):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    communicator.scope["user"] = user
    return communicator


async def test_a_broadcast_right_after_connect_reaches_the_client(layer):
    joins_take_a_trip_through_the_loop(layer)
    alice = communicator_of(RoomsConsumer)
    assert (await alice.connect())[0]
    for group in ("user:1", "room:first"):
        result = await Channels.group(group).broadcast(f"first to {group}")
        assert (result.sent_count, result.failed_count) == (1, 0)
        assert await alice.receive_from() == f"first to {group}"
    await alice.disconnect()


async def test_a_failing_join_rejects_the_handshake_and_leaves_what_was_joined(
    layer,
):
    fail_joins_to(layer, "room:first")
    alice = communicator_of(RoomsConsumer)
    connected, _ = await alice.connect()
    assert not connected
    assert await layer.group_members("user:1") == set()
    await alice.disconnect()  # what daphne sends after a refused handshake


async def test_channel_layer_alias_picks_the_layer(layer, make_layer):
    other = make_layer()
    with as_layer("other", other):
        alice = communicator_of(OtherLayerConsumer)
        assert (await alice.connect())[0]
        assert len(await other.group_members("user:1")) == 1
        assert await layer.group_members("user:1") == set()
        facade = ChannelsFacade()
        facade.configure(other)
        result = await facade.group("room:first").broadcast("through the other")
        assert result.sent_count == 1
        assert await alice.receive_from() == "through the other"
        await alice.disconnect()
        assert await other.group_members("room:first") == set()


async def test_an_alias_missing_from_the_settings_is_named():
    class MissingLayerConsumer(RoomsConsumer):
        channel_layer_alias = "missing"

    with pytest.raises(ImproperlyConfigured, match="'missing'"):
        await communicator_of(MissingLayerConsumer).connect()


@pytest.fixture
async def short_lived_layer(make_layer):
    """A layer whose memberships expire after one second, made the default."""
    made = make_layer(group_expiry=1)
    with as_default_layer(made):
        yield made


async def test_a_connected_consumer_outlives_group_expiry(short_lived_layer):
    """A consumer that stays connected keeps its groups past `group_expiry` (a
    dashboard open for days): it is still a member, and still receives."""
    alice = communicator_of(RoomsConsumer)
    assert (await alice.connect())[0]
    try:
        await asyncio.sleep(1.5)  # past group_expiry: the clock is the subject here
        assert len(await Channels.group_members("room:first")) == 1
        result = await Channels.group("room:first").broadcast("still here")
        assert (result.sent_count, result.failed_count) == (1, 0)
        assert await alice.receive_from(2) == "still here"
    finally:
        await alice.disconnect()
