"""AetherConsumer through WebsocketCommunicator: the lifecycle, every command, the
bad-frame table, the authorization matrix, the limits, and stock layers."""

import json

import pytest
from channels.layers import InMemoryChannelLayer as StockMemoryLayer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings

from aether_compat import ChannelMessage, Channels
from aether_compat.consumers import AetherConsumer
from aether_compat.outbound import OutboundGauge
from aether_compat.permissions import is_authenticated
from tests.support.bad_frames import BAD_FRAMES
from tests.support.facade import as_default_layer

ALICE = User(pk=1, username="alice")
BOB = User(pk=2, username="bob")
STAFF = User(pk=3, username="staff", is_staff=True)
ANONYMOUS = AnonymousUser()


class PersonalConsumer(AetherConsumer):
    """Joins the user's own group on connect, like the demo's ws/realtime/."""

    def get_groups(self):
        return [f"user:{self.user.pk}"] if is_authenticated(self.user) else []


class BareConsumer(AetherConsumer):
    """Joins nothing on connect: every membership comes from a command."""


class RoomConsumer(AetherConsumer):
    groups = ["room:fixed"]


class EventConsumer(PersonalConsumer):
    """Also handles a custom layer event, which must reach it through dispatch."""

    async def custom_event(self, event):
        await self.send(text_data=f"custom:{event['value']}")


@pytest.fixture
async def layer(make_layer):
    """A fresh layer of the current backend, made Django's default layer."""
    made = make_layer()
    with as_default_layer(made):
        yield made


def joined_payload(group):
    """A legacy joined reply's payload for a group without history."""
    return {"group": group, "recovered": None, "epoch": None, "offset": None}


async def open_socket(user, consumer=PersonalConsumer, path="/ws/"):
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def command(communicator, action, group, message=None):
    frame = {"action": action, "group": group}
    if message is not None:
        frame["message"] = message
    await communicator.send_to(text_data=json.dumps(frame))


async def next_message(communicator, within=2):
    return ChannelMessage.from_json(await communicator.receive_from(within))


async def reply(communicator, within=2):
    """The next frame, which must be a reply: (type, decoded payload)."""
    message = await next_message(communicator, within)
    assert message.type.startswith("aether."), message
    return message.type, json.loads(message.payload)


async def channel_of(communicator, group):
    """The channel name a lone connection has in `group`."""
    (channel,) = await Channels.group_members(group)
    return channel


# Lifecycle


async def test_connect_joins_get_groups_and_disconnect_leaves_all(layer):
    alice = await open_socket(ALICE)
    channel = await channel_of(alice, "user:1")
    await command(alice, "join", "room:a")
    assert await reply(alice) == ("aether.joined", joined_payload("room:a"))
    await command(alice, "join", "chat:b")
    await reply(alice)
    assert channel in await Channels.group_members("room:a")
    await alice.disconnect()
    for group in ("user:1", "room:a", "chat:b"):
        assert await Channels.group_members(group) == set()
    result = await Channels.group("room:a").broadcast("anyone?")
    assert (result.sent_count, result.failed_count) == (0, 0)


async def test_class_attribute_groups_are_joined_too(layer):
    communicator = await open_socket(ALICE, RoomConsumer)
    assert len(await Channels.group_members("room:fixed")) == 1
    await communicator.disconnect()
    assert await Channels.group_members("room:fixed") == set()


async def test_refused_connect_groups_reject_the_handshake(layer):
    class OthersConsumer(AetherConsumer):
        groups = ["user:2"]

    communicator = WebsocketCommunicator(OthersConsumer.as_asgi(), "/ws/")
    communicator.scope["user"] = ALICE
    connected, _ = await communicator.connect()
    assert not connected
    assert await Channels.group_members("user:2") == set()
    await communicator.disconnect()  # what daphne sends after a refused handshake


async def test_broadcasts_reach_the_socket_as_text_and_bytes(layer):
    alice = await open_socket(ALICE)
    text = await Channels.group("user:1").broadcast("plain text", sender="system")
    assert await alice.receive_from() == "plain text"
    data = await Channels.group("user:1").broadcast_binary(b"\x00\x01")
    assert (await alice.receive_output(2))["bytes"] == b"\x00\x01"
    assert (text.sent_count, data.sent_count) == (1, 1)
    assert await Channels.send(await channel_of(alice, "user:1"), "direct")
    assert await alice.receive_from() == "direct"
    await alice.disconnect()


async def test_other_layer_events_still_reach_their_handlers(layer):
    communicator = await open_socket(ALICE, EventConsumer)
    channel = await channel_of(communicator, "user:1")
    await layer.send(channel, {"type": "custom.event", "value": 7})
    assert await communicator.receive_from() == "custom:7"
    await communicator.disconnect()


# Commands


async def test_send_reaches_every_member_with_sender_and_counts(layer):
    alice = await open_socket(ALICE, BareConsumer)
    bob = await open_socket(BOB, BareConsumer)
    for communicator in (alice, bob):
        await command(communicator, "join", "room:lobby")
        await reply(communicator)
    await command(alice, "send", "room:lobby", "hello bob")
    for communicator in (alice, bob):
        message = await next_message(communicator)
        assert (message.type, message.payload) == ("chat.message", "hello bob")
        assert (message.sender, message.target) == ("alice", "room:lobby")
    assert await reply(alice) == (
        "aether.sent",
        {"group": "room:lobby", "sent_count": 2, "failed_count": 0},
    )
    await alice.disconnect()
    await bob.disconnect()


async def test_send_to_a_group_one_is_not_in(layer):
    alice = await open_socket(ALICE, BareConsumer)
    bob = await open_socket(BOB, BareConsumer)
    await command(bob, "join", "room:lobby")
    await reply(bob)
    await command(alice, "send", "room:lobby", "from outside")
    assert (await next_message(bob)).sender == "alice"
    assert await reply(alice) == (
        "aether.sent",
        {"group": "room:lobby", "sent_count": 1, "failed_count": 0},
    )
    await alice.disconnect()
    await bob.disconnect()


async def test_leave_and_rejoin_are_idempotent(layer):
    alice = await open_socket(ALICE, BareConsumer)
    await command(alice, "leave", "room:never-joined")
    assert await reply(alice) == ("aether.left", {"group": "room:never-joined"})
    for _ in range(2):
        await command(alice, "join", "room:a")
        assert (await reply(alice))[0] == "aether.joined"
    assert len(await Channels.group_members("room:a")) == 1
    await command(alice, "leave", "room:a")
    assert (await reply(alice))[0] == "aether.left"
    assert await Channels.group_members("room:a") == set()
    await alice.disconnect()


@pytest.mark.parametrize(("text", "data", "code"), BAD_FRAMES)
async def test_bad_frame_gets_its_error_and_the_socket_stays_usable(
    layer, text, data, code
):
    alice = await open_socket(ALICE)
    key, value = ("bytes", data) if text is None else ("text", text)
    await alice.send_input({"type": "websocket.receive", key: value})
    kind, payload = await reply(alice)
    assert (kind, payload["code"]) == ("aether.error", code)
    await command(alice, "join", "room:after")
    assert await reply(alice) == ("aether.joined", joined_payload("room:after"))
    await alice.disconnect()


# Authorization matrix: users x groups x actions

USERS = {"anonymous": ANONYMOUS, "alice": ALICE, "bob": BOB, "staff": STAFF}
GROUP_KINDS = ("own", "other", "room", "dashboard")


def group_for(user, kind):
    pk = getattr(user, "pk", None)
    return {
        "own": f"user:{pk}",
        "other": "user:1" if pk == 2 else "user:2",
        "room": "room:lobby",
        "dashboard": "dashboard:staff",
    }[kind]


def allowed(user, kind, anonymous_rooms):
    if kind == "own":
        return is_authenticated(user)
    if kind == "other":
        return False
    if kind == "room":
        return is_authenticated(user) or anonymous_rooms
    return bool(user.is_staff)


REPLIES = {"join": "aether.joined", "leave": "aether.left", "send": "aether.sent"}
MATRIX = [
    pytest.param(name, kind, action, rooms, id=f"{name}-{kind}-{action}-anon{rooms}")
    for name in USERS
    for kind in GROUP_KINDS
    for action in ("join", "leave", "send")
    for rooms in ((True, False) if name == "anonymous" and kind == "room" else (True,))
]


async def observer_for(group):
    """A connection rightfully in `group` (none for `user:None`), to show that a
    refused command does not reach or change the group."""
    if group.startswith("user:"):
        pk = group.removeprefix("user:")
        if not pk.isdigit():
            return None
        return await open_socket(User(pk=int(pk), username=f"user{pk}"))
    member = await open_socket(STAFF, BareConsumer)
    await command(member, "join", group)
    assert (await reply(member))[0] == "aether.joined"
    return member


@pytest.mark.parametrize(("name", "kind", "action", "anonymous_rooms"), MATRIX)
async def test_authorization_matrix(layer, name, kind, action, anonymous_rooms):
    user = USERS[name]
    group = group_for(user, kind)
    expected = allowed(user, kind, anonymous_rooms)
    with override_settings(AETHER_ALLOW_ANONYMOUS_ROOMS=anonymous_rooms):
        observer = await observer_for(group)
        before = await Channels.group_members(group)
        actor = await open_socket(user, BareConsumer)
        await command(actor, action, group, "hi" if action == "send" else None)
        kind_of_reply, payload = await reply(actor)
        members = await Channels.group_members(group)
        if expected:
            assert kind_of_reply == REPLIES[action]
            assert len(members - before) == (1 if action == "join" else 0)
        else:
            assert (kind_of_reply, payload["code"]) == ("aether.error", "not_allowed")
            assert members == before
            if observer is not None:
                assert await observer.receive_nothing(0.05)
        await actor.disconnect()
        if observer is not None:
            await observer.disconnect()


# Limits


@override_settings(AETHER_WEBSOCKET_LIMITS={"max_groups": 2})
async def test_groups_per_connection_are_limited(layer):
    alice = await open_socket(ALICE)  # user:1 is the first group
    await command(alice, "join", "room:a")
    assert (await reply(alice))[0] == "aether.joined"
    await command(alice, "join", "room:b")
    kind, payload = await reply(alice)
    assert (kind, payload["code"]) == ("aether.error", "too_many_groups")
    assert await Channels.group_members("room:b") == set()
    await command(alice, "leave", "room:a")
    await reply(alice)
    await command(alice, "join", "room:b")
    assert (await reply(alice))[0] == "aether.joined"
    await alice.disconnect()


@override_settings(
    AETHER_WEBSOCKET_LIMITS={"commands_per_second": 0.01, "command_burst": 3}
)
async def test_commands_beyond_the_rate_are_refused_then_a_flood_closes(layer):
    alice = await open_socket(ALICE)
    codes = []
    for _ in range(6):
        await command(alice, "join", "room:a")
        kind, payload = await reply(alice)
        codes.append(payload.get("code", kind))
    assert codes == ["aether.joined"] * 3 + ["rate_limited"] * 3
    await command(alice, "join", "room:a")
    assert await alice.receive_output(2) == {"type": "websocket.close", "code": 4008}
    assert await Channels.group_members("user:1") == set()
    assert await Channels.group_members("room:a") == set()


@override_settings(AETHER_WEBSOCKET_LIMITS={"close_frame_bytes": 1000})
async def test_a_frame_beyond_the_close_limit_closes_with_4009(layer):
    alice = await open_socket(ALICE)
    await alice.send_to(text_data="x" * 1001)
    assert await alice.receive_output(2) == {"type": "websocket.close", "code": 4009}
    assert await Channels.group_members("user:1") == set()


class StalledClientConsumer(PersonalConsumer):
    """A consumer whose client stopped reading: its gauge reports `backlog` bytes
    waiting, as daphne's transport buffer would."""

    backlog = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instances.append(self)

    instances: list = []

    def get_outbound_gauge(self, send):
        return OutboundGauge(lambda: type(self).backlog)


@override_settings(
    AETHER_WEBSOCKET_LIMITS={
        "outbound_limit_bytes": 1000,
        "outbound_grace_seconds": 0.05,
    }
)
async def test_a_client_that_stops_reading_fails_deliveries_then_is_closed(layer):
    """Beyond the outbound limit, deliveries to it are counted failures; once it has
    stayed behind for the grace period it leaves its groups and is closed with 4013,
    with no further message needed to notice."""
    StalledClientConsumer.backlog = 0
    alice = await open_socket(ALICE, StalledClientConsumer)
    bob = await open_socket(BOB)
    await command(bob, "join", "room:slow")
    await reply(bob)
    await command(alice, "join", "room:slow")
    await reply(alice)
    first = await Channels.group("room:slow").broadcast("while reading")
    assert first.sent_count == 2
    StalledClientConsumer.backlog = 5000
    stalled = await Channels.group("room:slow").broadcast("after it stopped")
    assert (stalled.sent_count, stalled.failed_count) == (1, 1)
    assert "not reading" in str(stalled.errors[0])
    assert await alice.receive_from() == "while reading"
    assert await alice.receive_output(2) == {"type": "websocket.close", "code": 4013}
    assert len(await Channels.group_members("room:slow")) == 1
    late = await Channels.group("room:slow").broadcast("after the close")
    assert (late.sent_count, late.failed_count) == (1, 0)
    for expected in ("while reading", "after it stopped", "after the close"):
        assert await bob.receive_from() == expected
    await bob.disconnect()


# Stock Channels layers: no sessions, messages come through dispatch


async def test_consumer_works_over_the_stock_in_memory_layer():
    stock = StockMemoryLayer()
    with as_default_layer(stock):
        alice = await open_socket(ALICE, BareConsumer)
        bob = await open_socket(BOB, BareConsumer)
        for communicator in (alice, bob):
            await command(communicator, "join", "room:stock")
            await reply(communicator)
        await command(alice, "send", "room:stock", "over a stock layer")
        message = await next_message(bob)
        assert (message.payload, message.sender) == ("over a stock layer", "alice")
        await bob.disconnect()
        await alice.disconnect()
        assert stock.groups == {}
