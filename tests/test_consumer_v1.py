"""AetherConsumer speaking `aether.v1` through WebsocketCommunicator: the
subprotocol handshake, refs echoed in every reply, flat reply frames, ping and
pong, typed group messages, push(), and legacy clients left as they were."""

import json
import time

import pytest
from channels.layers import InMemoryChannelLayer as StockMemoryLayer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings

from aether_compat import ChannelMessage, Channels
from aether_compat.consumers import AetherConsumer
from tests.support.facade import as_default_layer

ALICE = User(pk=1, username="alice")
V1 = "aether.v1"


class RoomConsumer(AetherConsumer):
    """Joins nothing on connect; pushes a greeting of its own once connected."""

    async def connected(self) -> None:
        await self.push("welcome")


@pytest.fixture
async def layer(make_layer):
    made = make_layer()
    with as_default_layer(made):
        yield made


async def open_v1(user=ALICE, subprotocols=(V1,)):
    communicator = WebsocketCommunicator(
        RoomConsumer.as_asgi(), "/ws/", subprotocols=list(subprotocols)
    )
    communicator.scope["user"] = user
    connected, subprotocol = await communicator.connect()
    assert connected
    return communicator, subprotocol


async def frame(communicator, within=2):
    return json.loads(await communicator.receive_from(within))


async def ask(communicator, **command):
    await communicator.send_to(text_data=json.dumps(command))
    return await frame(communicator)


async def test_a_v1_client_is_accepted_with_aether_v1(layer):
    ws, subprotocol = await open_v1(subprotocols=("other", V1))
    assert subprotocol == V1
    assert await frame(ws) == {
        "type": "aether.message",
        "group": None,
        "sender": None,
        "data": "welcome",
        "offset": None,
        "epoch": None,
    }
    await ws.disconnect()


async def test_a_client_without_v1_gets_legacy_frames(layer):
    ws, subprotocol = await open_v1(subprotocols=("other",))
    assert subprotocol is None
    assert await ws.receive_from(2) == "welcome"
    await ws.send_to(text_data=json.dumps({"action": "join", "group": "room:a"}))
    reply = ChannelMessage.from_json(await ws.receive_from(2))
    assert (reply.type, json.loads(reply.payload)) == (
        "aether.joined",
        {"group": "room:a", "recovered": None, "epoch": None, "offset": None},
    )
    await ws.disconnect()


@pytest.mark.parametrize("ref", [7, 0, 2**53 - 1, "a", "r" * 64, "ü-🙂"])
async def test_every_reply_echoes_the_ref_with_its_json_type(layer, ref):
    ws, _ = await open_v1()
    await frame(ws)
    joined = await ask(ws, action="join", group="room:a", ref=ref)
    assert joined == {
        "type": "aether.joined",
        "ref": ref,
        "group": "room:a",
        "recovered": None,
        "epoch": None,
        "offset": None,
    }
    own = await ask(ws, action="send", group="room:a", message="hi", ref=ref)
    assert own["type"] == "aether.message"
    assert await frame(ws) == {
        "type": "aether.sent",
        "ref": ref,
        "group": "room:a",
        "sent_count": 1,
        "failed_count": 0,
    }
    assert await ask(ws, action="ping", ref=ref) == {"type": "aether.pong", "ref": ref}
    left = await ask(ws, action="leave", group="room:a", ref=ref)
    assert left == {"type": "aether.left", "ref": ref, "group": "room:a"}
    await ws.disconnect()


async def test_a_command_without_ref_gets_ref_null(layer):
    ws, _ = await open_v1()
    await frame(ws)
    assert await ask(ws, action="join", group="room:a") == {
        "type": "aether.joined",
        "ref": None,
        "group": "room:a",
        "recovered": None,
        "epoch": None,
        "offset": None,
    }
    await ws.disconnect()


async def test_pong_is_taken_silently(layer):
    ws, _ = await open_v1()
    await frame(ws)
    await ws.send_to(text_data=json.dumps({"action": "pong"}))
    assert await ask(ws, action="ping", ref=1) == {"type": "aether.pong", "ref": 1}
    await ws.disconnect()


async def test_a_bad_ref_is_an_error_and_the_socket_stays_usable(layer):
    ws, _ = await open_v1()
    await frame(ws)
    error = await ask(ws, action="join", group="room:a", ref=1.5)
    assert (error["type"], error["ref"], error["group"], error["code"]) == (
        "aether.error",
        None,
        None,
        "invalid_ref",
    )
    assert "2**53" in error["detail"]
    assert (await ask(ws, action="join", group="room:a", ref=2))["type"] == (
        "aether.joined"
    )
    await ws.disconnect()


@pytest.mark.parametrize(
    ("command", "code", "group"),
    [
        pytest.param({"action": "join", "group": "a b"}, "invalid_group", None),
        pytest.param({"action": "dance"}, "unknown_action", None),
        pytest.param(
            {"action": "join", "group": "dashboard:staff"},
            "not_allowed",
            "dashboard:staff",
        ),
        pytest.param(
            {"action": "send", "group": "room:a", "message": "m", "echo": "no"},
            "invalid_echo",
            None,
        ),
    ],
)
async def test_errors_echo_the_ref_they_could_read(layer, command, code, group):
    ws, _ = await open_v1()
    await frame(ws)
    error = await ask(ws, **command, ref="r-9")
    assert {k: error[k] for k in ("type", "ref", "group", "code")} == {
        "type": "aether.error",
        "ref": "r-9",
        "group": group,
        "code": code,
    }
    await ws.disconnect()


async def test_legacy_replies_carry_the_ref_in_their_payload(layer):
    ws, _ = await open_v1(subprotocols=())
    await ws.receive_from(2)
    await ws.send_to(text_data=json.dumps({"action": "ping", "ref": "p"}))
    pong = ChannelMessage.from_json(await ws.receive_from(2))
    assert (pong.type, json.loads(pong.payload)) == ("aether.pong", {"ref": "p"})
    await ws.send_to(text_data=json.dumps({"action": "join", "group": "a b", "ref": 3}))
    error = ChannelMessage.from_json(await ws.receive_from(2))
    assert json.loads(error.payload)["ref"] == 3
    await ws.disconnect()


async def test_group_messages_are_typed_frames_with_their_group(layer):
    alice, _ = await open_v1()
    bob, _ = await open_v1(subprotocols=())
    await frame(alice)
    await bob.receive_from(2)
    await ask(alice, action="join", group="room:a")
    await bob.send_to(text_data=json.dumps({"action": "join", "group": "room:a"}))
    await bob.receive_from(2)
    await bob.send_to(
        text_data=json.dumps({"action": "send", "group": "room:a", "message": "yo"})
    )
    message = await frame(alice)
    assert (message["type"], message["group"], message["offset"], message["epoch"]) == (
        "aether.message",
        "room:a",
        None,
        None,
    )
    chat = ChannelMessage.from_json(message["data"])
    assert (chat.type, chat.payload, chat.sender) == ("chat.message", "yo", "alice")
    assert message["sender"] == "alice"
    await Channels.group("room:a").broadcast_binary(b"\x00bin")
    assert await alice.receive_from(2) == b"\x00bin"
    await alice.disconnect()
    await bob.disconnect()


async def test_raw_layer_events_reach_v1_clients_with_group_null(layer):
    ws, _ = await open_v1()
    await frame(ws)
    await ask(ws, action="join", group="room:raw")
    await layer.group_send(
        "room:raw", {"type": "aether.message", "text": "raw", "sender": "x"}
    )
    assert await frame(ws) == {
        "type": "aether.message",
        "group": None,
        "sender": "x",
        "data": "raw",
        "offset": None,
        "epoch": None,
    }
    await ws.disconnect()


# Heartbeats

SHORT_HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 0.7}


@override_settings(AETHER_WEBSOCKET_LIMITS=SHORT_HEARTBEAT)
async def test_a_client_that_answers_pings_stays_connected(layer):
    """Five answered pings span more than the timeout: answers keep it open."""
    ws, _ = await open_v1()
    await frame(ws)
    await ask(ws, action="join", group="room:beat")
    for _ in range(5):
        assert await frame(ws) == {"type": "aether.ping"}
        await ws.send_to(text_data=json.dumps({"action": "pong"}))
    assert (await ask(ws, action="ping", ref=1))["type"] == "aether.pong"
    assert len(await Channels.group_members("room:beat")) == 1
    await ws.disconnect()


@override_settings(AETHER_WEBSOCKET_LIMITS=SHORT_HEARTBEAT)
async def test_a_silent_client_is_pinged_then_leaves_its_groups_and_is_closed(layer):
    ws, _ = await open_v1()
    await frame(ws)
    silent_since = time.monotonic()  # the last frame is sent after this
    await ask(ws, action="join", group="room:beat")
    output = await ws.receive_output(2)
    pings = 0
    while output["type"] == "websocket.send":
        assert json.loads(output["text"]) == {"type": "aether.ping"}
        pings += 1
        output = await ws.receive_output(2)
    assert output == {"type": "websocket.close", "code": 4001}
    assert pings >= 1
    assert time.monotonic() - silent_since >= SHORT_HEARTBEAT["heartbeat_timeout"]
    assert await Channels.group_members("room:beat") == set()


@override_settings(AETHER_WEBSOCKET_LIMITS=SHORT_HEARTBEAT)
async def test_legacy_connections_get_no_heartbeats(layer):
    ws, _ = await open_v1(subprotocols=())
    assert await ws.receive_from(2) == "welcome"
    assert await ws.receive_nothing(timeout=1.0)
    await ws.disconnect()


async def test_echo_false_leaves_the_sender_out_of_its_broadcast(layer):
    alice, _ = await open_v1()
    bob, _ = await open_v1()
    for ws in (alice, bob):
        await frame(ws)
        await ask(ws, action="join", group="room:echo")
    sent = await ask(
        alice, action="send", group="room:echo", message="m", echo=False, ref=5
    )
    assert (sent["type"], sent["ref"], sent["sent_count"], sent["failed_count"]) == (
        "aether.sent",
        5,
        1,
        0,
    )
    assert (await frame(bob))["type"] == "aether.message"
    assert await ask(alice, action="ping") == {"type": "aether.pong", "ref": None}
    await alice.disconnect()
    await bob.disconnect()


async def test_echo_false_on_a_stock_layer_is_an_unsupported_error():
    with as_default_layer(StockMemoryLayer()):
        ws, _ = await open_v1()
        await frame(ws)
        await ask(ws, action="join", group="room:stock")
        error = await ask(
            ws, action="send", group="room:stock", message="m", echo=False, ref=1
        )
        assert (error["type"], error["code"], error["ref"]) == (
            "aether.error",
            "unsupported",
            1,
        )
        await ws.disconnect()


async def test_v1_refuses_fields_a_command_does_not_take_and_stays_usable(layer):
    """The schema is closed, and so is the server: an undeclared field in a v1
    command is an error naming it; the connection goes on. Legacy clients' extra
    fields are ignored, as before."""
    ws, _ = await open_v1()
    await frame(ws)  # the welcome
    reply = await ask(ws, action="join", group="room:a", ref=1, x=2)
    assert (reply["type"], reply["code"], reply["ref"]) == (
        "aether.error",
        "unknown_field",
        1,
    )
    assert "'x'" in reply["detail"]
    assert (await ask(ws, action="join", group="room:a", ref=2))[
        "type"
    ] == "aether.joined"
    await ws.disconnect()
    legacy, _ = await open_v1(subprotocols=())
    await legacy.receive_from(2)
    await legacy.send_to(text_data=json.dumps({"action": "ping", "x": 1}))
    assert ChannelMessage.from_json(await legacy.receive_from(2)).type == "aether.pong"
    await legacy.disconnect()
