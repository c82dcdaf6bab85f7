"""ChannelMessage: the Aether envelope and its JSON."""

import json

import pytest

from aether_compat import ChannelMessage
from aether_compat.messages import now_ms


def test_round_trip_uses_exactly_the_aether_keys():
    message = ChannelMessage(
        "chat.message", '{"text":"Hello!"}', "u1", "room:general", 5
    )
    data = json.loads(message.to_json())
    assert data == {
        "type": "chat.message",
        "payload": '{"text":"Hello!"}',
        "sender": "u1",
        "target": "room:general",
        "timestamp": 5,
    }
    assert ChannelMessage.from_json(message.to_json()) == message


def test_defaults_and_timestamp_in_unix_ms():
    before = now_ms()
    message = ChannelMessage(type="t", payload="p")
    assert (message.sender, message.target) == (None, None)
    assert before <= message.timestamp <= now_ms()
    assert message.timestamp > 1_600_000_000_000  # milliseconds, not seconds


def test_non_ascii_survives():
    message = ChannelMessage("t", "héllo ✓ 🚀")
    assert ChannelMessage.from_json(message.to_json().encode()) == message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("{", "malformed", id="malformed"),
        pytest.param("[1]", "object", id="not-object"),
        pytest.param('{"type": "t"}', "payload", id="missing-key"),
        pytest.param(
            '{"type": 1, "payload": "p", "sender": null, "target": null, '
            '"timestamp": 1}',
            "type must be a string",
            id="wrong-type",
        ),
        pytest.param(
            '{"type": "t", "payload": "p", "sender": null, "target": null, '
            '"timestamp": "soon"}',
            "timestamp",
            id="timestamp-not-int",
        ),
        pytest.param(
            '{"type": "t", "payload": "p", "sender": null, "target": null, '
            '"timestamp": true}',
            "timestamp",
            id="timestamp-bool",
        ),
        pytest.param(
            '{"type": "t", "payload": "p", "sender": 3, "target": null, '
            '"timestamp": 1}',
            "sender",
            id="sender-not-string",
        ),
        pytest.param(
            '{"type": "t", "payload": "p", "sender": null, "target": null, '
            '"timestamp": 1, "extra": 1}',
            "extra",
            id="unknown-key",
        ),
        pytest.param("[" * 100_000, "malformed", id="deeply-nested"),
    ],
)
def test_bad_json_raises_value_error_saying_what(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        ChannelMessage.from_json(text)


def test_constructor_checks_types():
    with pytest.raises(TypeError, match="payload must be a string"):
        ChannelMessage("t", b"bytes")  # type: ignore[arg-type]


def test_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        ChannelMessage("t", "p").type = "u"  # type: ignore[misc]
