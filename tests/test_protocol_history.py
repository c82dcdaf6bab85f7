"""The protocol's history fields as pure functions: `since` on `join`, the
position fields of `aether.joined`, `offset`/`epoch` of `aether.message`, and the
`?since=` positions of a connection's query string."""

import json

import pytest

from aether_compat.errors import CommandRejected
from aether_compat.history import Position
from aether_compat.messages import ChannelMessage
from aether_compat.protocol import AETHER_V1, LEGACY, parse_command, v1_message
from aether_compat.resume import INVALID, query_positions


def parse(data, strict=True):
    return parse_command(json.dumps(data), None, max_frame_bytes=65536, strict=strict)


@pytest.mark.parametrize("strict", [True, False], ids=["v1", "legacy"])
def test_join_takes_since_in_both_dialects(strict):
    command = parse(
        {"action": "join", "group": "room:a", "since": {"epoch": "e", "offset": 0}},
        strict,
    )
    assert command.since == Position("e", 0)
    assert parse({"action": "join", "group": "room:a"}, strict).since is None


def test_since_belongs_to_join_only():
    with pytest.raises(CommandRejected) as refused:
        parse(
            {"action": "leave", "group": "room:a", "since": {"epoch": "e", "offset": 1}}
        )
    assert refused.value.code == "unknown_field"


@pytest.mark.parametrize(
    "since",
    [
        pytest.param({"epoch": "e", "offset": 2**53}, id="offset-too-big"),
        pytest.param({"epoch": "x" * 65, "offset": 1}, id="epoch-too-long"),
        pytest.param({"epoch": 5, "offset": 1}, id="epoch-number"),
        pytest.param({"epoch": "e", "offset": "1"}, id="offset-string"),
        pytest.param(None, id="null"),
    ],
)
def test_a_bad_since_is_refused_with_its_rule(since):
    with pytest.raises(CommandRejected, match="since must be") as refused:
        parse({"action": "join", "group": "room:a", "since": since, "ref": 9})
    assert (refused.value.code, refused.value.ref) == ("invalid_since", 9)


def test_joined_frames_carry_the_position_in_both_dialects():
    v1 = json.loads(AETHER_V1.joined("room:a", 1, True, "e", 7))
    assert v1 == {
        "type": "aether.joined",
        "ref": 1,
        "group": "room:a",
        "recovered": True,
        "epoch": "e",
        "offset": 7,
    }
    legacy = ChannelMessage.from_json(LEGACY.joined("room:a", None, None, None, None))
    assert json.loads(legacy.payload) == {
        "group": "room:a",
        "recovered": None,
        "epoch": None,
        "offset": None,
    }


def test_message_frames_carry_offset_and_epoch_and_are_not_mixed_up():
    first = json.loads(v1_message("room:a", "ann", "hi", 4, "e"))
    second = json.loads(v1_message("room:a", "ann", "hi", 5, "e"))
    plain = json.loads(v1_message("room:a", "ann", "hi"))
    assert (first["offset"], second["offset"], plain["offset"]) == (4, 5, None)
    assert (first["epoch"], plain["epoch"]) == ("e", None)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(b"", {}, id="none"),
        pytest.param(b"since=room:a:e1:4", {"room:a": Position("e1", 4)}, id="one"),
        pytest.param(
            b"since=room:a:e1:4,room:b:c:e2:0&x=1",
            {"room:a": Position("e1", 4), "room:b:c": Position("e2", 0)},
            id="two-and-colons",
        ),
        pytest.param(
            b"since=room%3Aa%3Ae1%3A4%2Croom%3Ab%3Ae2%3A1",
            {"room:a": Position("e1", 4), "room:b": Position("e2", 1)},
            id="url-encoded",
        ),
        pytest.param(b"since=room:a:e1:x", {"room:a": INVALID}, id="bad-offset"),
        pytest.param(b"since=room:a::3", {"room:a": INVALID}, id="empty-epoch"),
        pytest.param(b"since=junk", {}, id="no-position"),
    ],
)
def test_query_string_positions(query, expected):
    assert query_positions({"query_string": query}) == expected
