"""The shipped aether.v1 JSON Schema: every frame the server really sends in a
scripted session validates, the schema is closed, and docs/protocol.md's tables
name exactly what the schema declares."""

import json
import re
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from tests.support.facade import as_default_layer
from tests.support.schema import assert_server_frames, v1_schema, validator

DOCS = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
ALL_SERVER_TYPES = {
    "aether.joined",
    "aether.left",
    "aether.sent",
    "aether.error",
    "aether.pong",
    "aether.ping",
    "aether.message",
}


class PushingConsumer(AetherConsumer):
    async def connected(self) -> None:
        await self.push('{"hello": "you"}')


@pytest.fixture
async def layer(make_layer):
    made = make_layer()
    with as_default_layer(made):
        yield made


CLIENT_FRAMES = [
    {"action": "join", "group": "room:s", "ref": 1},
    {"action": "send", "group": "room:s", "message": "hé 🙂", "ref": "s-1"},
    {"action": "send", "group": "room:s", "message": "quiet", "echo": False},
    {"action": "ping", "ref": 2**53 - 1},
    {"action": "pong"},
    {"action": "join", "group": "dashboard:staff", "ref": "no"},
    {"action": "leave", "group": "room:s", "ref": "x" * 64},
]
BAD_CLIENT_TEXT = ["not json", "[1]", '{"action": "join", "ref": 1.5}', "{}"]


@override_settings(
    AETHER_WEBSOCKET_LIMITS={"heartbeat_interval": 0.2, "heartbeat_timeout": 5}
)
async def test_every_frame_of_a_real_session_validates(layer):
    communicator = WebsocketCommunicator(
        PushingConsumer.as_asgi(), "/ws/", subprotocols=["aether.v1"]
    )
    communicator.scope["user"] = User(pk=1, username="alice")
    connected, _ = await communicator.connect()
    assert connected
    frames = [await communicator.receive_from(2)]
    for command in CLIENT_FRAMES:
        assert not list(validator("clientFrame").iter_errors(command)), command
        await communicator.send_to(text_data=json.dumps(command))
    for text in BAD_CLIENT_TEXT:
        await communicator.send_to(text_data=text)
    await layer.group_send("room:s", {"type": "aether.message", "text": "raw"})
    await Channels.group("room:s").broadcast("from the facade", sender="app")
    # Replies to 6 commands (pong gets none), 4 errors, 2 own echoes, 2 broadcasts
    # (the raw one and the facade one may come before the leave), then a ping.
    while "aether.ping" not in {json.loads(f)["type"] for f in frames}:
        frames.append(await communicator.receive_from(2))
    seen = assert_server_frames(frames)
    assert seen == ALL_SERVER_TYPES
    await communicator.disconnect()


def sample_frames():
    """One valid frame per `$defs` entry of a frame."""
    return {
        "client.join": {
            "action": "join",
            "group": "room:a",
            "since": {"epoch": "e1", "offset": 4},
        },
        "client.leave": {"action": "leave", "group": "room:a", "ref": 1},
        "client.send": {"action": "send", "group": "g", "message": "m", "echo": True},
        "client.ping": {"action": "ping", "ref": "p"},
        "client.pong": {"action": "pong"},
        "server.joined": {
            "type": "aether.joined",
            "ref": None,
            "group": "g",
            "recovered": True,
            "epoch": "e1",
            "offset": 9,
        },
        "server.left": {"type": "aether.left", "ref": 3, "group": "g"},
        "server.sent": {
            "type": "aether.sent",
            "ref": "r",
            "group": "g",
            "sent_count": 2,
            "failed_count": 0,
        },
        "server.error": {
            "type": "aether.error",
            "ref": None,
            "group": None,
            "code": "not_json",
            "detail": "d",
        },
        "server.pong": {"type": "aether.pong", "ref": None},
        "server.ping": {"type": "aether.ping"},
        "server.presence_state": {
            "type": "aether.presence_state",
            "group": "g",
            "presence": {"7": [{"user": "7", "name": "ann"}], "anon-1f": [{}]},
        },
        "server.presence_diff": {
            "type": "aether.presence_diff",
            "group": "g",
            "joins": {"7": [{"user": "7"}]},
            "leaves": {},
        },
        "server.message": {
            "type": "aether.message",
            "group": None,
            "sender": None,
            "data": "x",
            "offset": None,
            "epoch": None,
        },
    }


FRAME_DEFS = sorted(sample_frames())


def test_every_frame_definition_has_a_sample():
    defs = {name for name in v1_schema()["$defs"] if "." in name}
    assert defs == set(FRAME_DEFS)


@pytest.mark.parametrize("name", FRAME_DEFS)
def test_the_schema_is_closed(name):
    """A sample validates; the same frame with one undeclared property does not."""
    frame = sample_frames()[name]
    assert validator().is_valid(frame)
    assert not validator().is_valid({**frame, "extra": 1})


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"action": "join", "group": "a b"}, id="bad-group"),
        pytest.param({"action": "join"}, id="no-group"),
        pytest.param({"action": "ping", "ref": ""}, id="empty-ref"),
        pytest.param({"action": "ping", "ref": 2**53}, id="big-ref"),
        pytest.param({"action": "ping", "ref": None}, id="null-ref"),
        pytest.param({"action": "send", "group": "g", "message": 1}, id="num-msg"),
        pytest.param({"type": "aether.pong"}, id="pong-without-ref"),
        pytest.param({"type": "aether.nope"}, id="unknown-type"),
    ],
)
def test_the_schema_rejects_what_the_protocol_refuses(frame):
    assert not validator().is_valid(frame)


# docs/protocol.md against the schema


def table_rows(heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading`, as cells."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # header and separator


def names_in(cell: str) -> set[str]:
    """Backquoted field names in a cell (not JSON values or examples)."""
    quoted = set(re.findall(r"`([^`]+)`", cell)) - {"true", "false", "null"}
    return {name for name in quoted if re.fullmatch(r"[a-z_]+", name)}


def schema_frames(kind: str, key: str) -> dict[str, set[str]]:
    defs = v1_schema()["$defs"]
    return {
        entry["properties"][key]["const"]: set(entry["properties"]) - {key}
        for name, entry in defs.items()
        if name.startswith(kind + ".")
    }


def test_the_client_table_names_exactly_the_schema_actions_and_fields():
    """`ref` is said once above the table, for every command."""
    docs = {}
    for action, fields, _reply in table_rows("## Client → server"):
        docs[action.strip("`")] = names_in(fields) | {"ref"}
    assert docs == schema_frames("client", "action")
    assert "Every command may carry a `ref`" in DOCS.read_text(encoding="utf-8")


def test_the_server_table_names_exactly_the_schema_types_and_fields():
    docs = {}
    for type_, fields in table_rows("## Server → client"):
        docs[type_.strip("`")] = names_in(fields)
    assert docs == schema_frames("server", "type")
