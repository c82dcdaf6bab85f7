"""Bad command frames and the error code each one earns, shared by the protocol,
consumer and end-to-end tests: (text, bytes, code) as pytest params."""

import json

import pytest

LIMIT = 64 * 1024  # the default max_frame_bytes


def frame(**fields):
    return json.dumps(fields)


NESTED_ARRAYS = "[" * 20_000 + "]" * 20_000
NESTED_IN_COMMAND = '{"action": "send", "group": "room:a", "message": ' + "[" * 50_000
HUGE_NUMBER = "9" * 5000

BAD_FRAMES = [
    pytest.param(None, b"\x00\x01binary", "binary_frame", id="binary"),
    pytest.param(None, b"\xff\xfe\xfd", "binary_frame", id="binary-invalid-utf8"),
    pytest.param(None, frame(action="join").encode(), "binary_frame", id="binary-json"),
    pytest.param("", None, "not_json", id="empty"),
    pytest.param("hello", None, "not_json", id="plain-text"),
    pytest.param('{"action": "join",', None, "not_json", id="truncated"),
    pytest.param(NESTED_ARRAYS, None, "not_json", id="deeply-nested"),
    pytest.param(NESTED_IN_COMMAND, None, "not_json", id="deeply-nested-message"),
    pytest.param("[1, 2]", None, "not_object", id="array"),
    pytest.param('"join"', None, "not_object", id="string"),
    pytest.param("null", None, "not_object", id="null"),
    pytest.param("NaN", None, "not_object", id="nan"),
    pytest.param(HUGE_NUMBER, None, "not_object", id="5000-digit-number"),
    pytest.param("1e999999", None, "not_object", id="huge-exponent"),
    pytest.param("{}", None, "unknown_action", id="no-action"),
    pytest.param(
        frame(action="dance", group="room:a"), None, "unknown_action", id="bad"
    ),
    pytest.param(
        frame(action="JOIN", group="room:a"), None, "unknown_action", id="case"
    ),
    pytest.param(
        '{"action": 1, "group": "room:a"}', None, "unknown_action", id="number"
    ),
    pytest.param(
        frame(action=None, group="room:a"), None, "unknown_action", id="null-a"
    ),
    pytest.param(frame(action="join"), None, "missing_group", id="no-group"),
    pytest.param(frame(action="join", group=""), None, "invalid_group", id="empty-g"),
    pytest.param(frame(action="join", group="a b"), None, "invalid_group", id="space"),
    pytest.param(frame(action="join", group="a!b"), None, "invalid_group", id="bang"),
    pytest.param(
        frame(action="join", group="rööm"), None, "invalid_group", id="non-ascii"
    ),
    pytest.param(
        frame(action="join", group="room:٣"), None, "invalid_group", id="unicode-digit"
    ),
    pytest.param(
        frame(action="join", group="g" * 100), None, "invalid_group", id="long"
    ),
    pytest.param(
        frame(action="join", group=5), None, "invalid_group", id="number-group"
    ),
    pytest.param(frame(action="join", group=None), None, "invalid_group", id="null-g"),
    pytest.param(
        frame(action="join", group=["room:a"]), None, "invalid_group", id="list-group"
    ),
    pytest.param(
        '{"action": "join", "group": ' + HUGE_NUMBER + "}",
        None,
        "invalid_group",
        id="5000-digit-group",
    ),
    pytest.param(
        '{"action": "join", "group": "\\ud800"}',
        None,
        "invalid_group",
        id="surrogate-g",
    ),
    pytest.param(
        frame(action="send", group="room:a"), None, "invalid_message", id="no-m"
    ),
    pytest.param(
        frame(action="send", group="room:a", message=5),
        None,
        "invalid_message",
        id="int",
    ),
    pytest.param(
        frame(action="send", group="room:a", message=None),
        None,
        "invalid_message",
        id="null-message",
    ),
    pytest.param(
        frame(action="send", group="room:a", message={"text": "hi"}),
        None,
        "invalid_message",
        id="object-message",
    ),
    pytest.param(
        '{"action": "send", "group": "room:a", "message": ' + HUGE_NUMBER + "}",
        None,
        "invalid_message",
        id="5000-digit-message",
    ),
    pytest.param(
        '{"action": "send", "group": "room:a", "message": "\\ud800"}',
        None,
        "invalid_unicode",
        id="escaped-lone-surrogate",
    ),
    pytest.param(
        '{"action": "send", "group": "room:a", "message": "\ud800"}',
        None,
        "invalid_unicode",
        id="raw-lone-surrogate",
    ),
    pytest.param(
        frame(action="send", group="room:a", message="x" * LIMIT),
        None,
        "frame_too_large",
        id="too-large",
    ),
    pytest.param(
        frame(action="send", group="room:a", message="é" * (LIMIT // 2)),
        None,
        "frame_too_large",
        id="too-large-in-utf8-bytes",
    ),
]
