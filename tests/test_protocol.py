"""The JSON command protocol as pure functions: every good command, every bad frame
and the error it gets, and reply frames that any client can read."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether_compat import ChannelMessage, CommandRejected, SendResult
from aether_compat.protocol import (
    ACTIONS,
    Command,
    chat_message,
    error_frame,
    joined_frame,
    left_frame,
    parse_command,
    sent_frame,
)
from tests.support.bad_frames import BAD_FRAMES, LIMIT, frame


def parse(text=None, data=None, limit=LIMIT):
    return parse_command(text, data, max_frame_bytes=limit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            frame(action="join", group="room:lobby"),
            Command("join", "room:lobby"),
            id="join",
        ),
        pytest.param(
            frame(action="leave", group="user:42"),
            Command("leave", "user:42"),
            id="leave",
        ),
        pytest.param(
            frame(action="send", group="chat:a.b-c_d", message="hi"),
            Command("send", "chat:a.b-c_d", "hi"),
            id="send",
        ),
        pytest.param(
            frame(action="send", group="room:x", message=""),
            Command("send", "room:x", ""),
            id="send-empty-message",
        ),
        pytest.param(
            frame(action="send", group="room:x", message="héllo ✓ 👋"),
            Command("send", "room:x", "héllo ✓ 👋"),
            id="send-unicode",
        ),
        pytest.param(
            frame(action="join", group="room:x", message=5, extra=[1, 2]),
            Command("join", "room:x"),
            id="join-ignores-other-keys",
        ),
        pytest.param(
            frame(action="join", group="g" * 99),
            Command("join", "g" * 99),
            id="99-chars",
        ),
    ],
)
def test_good_commands_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "data", "code"), BAD_FRAMES)
def test_bad_frames_are_rejected_with_their_code(text, data, code):
    with pytest.raises(CommandRejected) as caught:
        parse(text, data)
    assert caught.value.code == code
    assert caught.value.detail


@pytest.mark.parametrize(("text", "data", "code"), BAD_FRAMES)
def test_error_frames_are_aether_json_that_utf8_can_carry(text, data, code):
    """The detail may quote the client's value; the frame must still encode, since
    daphne encodes every text frame as UTF-8 (a lone surrogate would crash it)."""
    with pytest.raises(CommandRejected) as caught:
        parse(text, data)
    wire = error_frame(caught.value, "room:a").encode("utf-8")
    message = ChannelMessage.from_json(wire)
    assert message.type == "aether.error"
    assert message.target == "room:a"
    assert json.loads(message.payload) == {
        "code": code,
        "detail": caught.value.detail,
    }


def test_frame_size_counts_utf8_bytes_not_characters():
    message = "é" * 1000  # 2000 bytes
    text = frame(action="send", group="room:a", message=message)
    assert parse(text, limit=len(text.encode())) == Command("send", "room:a", message)
    with pytest.raises(CommandRejected, match="at most"):
        parse(text, limit=len(text.encode()) - 1)


def test_invalid_group_detail_states_the_rule():
    with pytest.raises(CommandRejected, match="ASCII letters, digits"):
        parse(frame(action="join", group="a b"))


def test_reply_frames_carry_group_and_counts():
    joined = ChannelMessage.from_json(joined_frame("room:a"))
    left = ChannelMessage.from_json(left_frame("room:a"))
    sent = ChannelMessage.from_json(
        sent_frame("room:a", SendResult(3, 1, (RuntimeError("x"),)))
    )
    assert (joined.type, joined.target) == ("aether.joined", "room:a")
    assert (left.type, left.target) == ("aether.left", "room:a")
    assert sent.type == "aether.sent"
    assert json.loads(sent.payload) == {
        "group": "room:a",
        "sent_count": 3,
        "failed_count": 1,
    }


def test_chat_message_names_sender_and_group():
    message = chat_message(Command("send", "room:a", "hi"), "alice")
    assert (message.type, message.payload) == ("chat.message", "hi")
    assert (message.sender, message.target) == ("alice", "room:a")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
COMMANDISH = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["join", "leave", "send", "x"]) | JSON_VALUES,
        "group": st.sampled_from(["room:a", "user:1", "a b"]) | JSON_VALUES,
        "message": JSON_VALUES,
    },
)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        COMMANDISH.map(json.dumps),
        JSON_VALUES.map(json.dumps),
        ANY_TEXT,
    )
)
def test_any_text_frame_is_a_command_or_a_clear_rejection(text):
    try:
        command = parse(text)
    except CommandRejected as exc:
        error_frame(exc).encode("utf-8")
    else:
        assert command.action in ACTIONS
        assert (command.message is not None) == (command.action == "send")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100))
def test_any_binary_frame_is_rejected(data):
    with pytest.raises(CommandRejected) as caught:
        parse(None, data)
    assert caught.value.code == "binary_frame"


# Refs, echo, ping and pong


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"action": "join", "group": "room:a", "ref": 0}',
            Command("join", "room:a", ref=0),
            id="int-ref-zero",
        ),
        pytest.param(
            '{"action": "leave", "group": "room:a", "ref": 9007199254740991}',
            Command("leave", "room:a", ref=2**53 - 1),
            id="int-ref-max",
        ),
        pytest.param(
            frame(action="send", group="room:a", message="m", ref="x" * 64),
            Command("send", "room:a", "m", ref="x" * 64),
            id="str-ref-64",
        ),
        pytest.param(
            frame(action="send", group="room:a", message="m", echo=False, ref="é"),
            Command("send", "room:a", "m", ref="é", echo=False),
            id="echo-false",
        ),
        pytest.param(frame(action="ping"), Command("ping"), id="ping"),
        pytest.param(
            frame(action="ping", ref="p1"), Command("ping", ref="p1"), id="ping-ref"
        ),
        pytest.param(frame(action="pong"), Command("pong"), id="pong"),
    ],
)
def test_refs_echo_and_heartbeat_commands_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param('""', id="empty-string"),
        pytest.param(json.dumps("x" * 65), id="65-chars"),
        pytest.param("-1", id="negative"),
        pytest.param("9007199254740992", id="2-to-the-53"),
        pytest.param("1.5", id="fraction"),
        pytest.param("1.0", id="float-literal"),
        pytest.param("1e3", id="exponent"),
        pytest.param("null", id="null"),
        pytest.param("true", id="boolean"),
        pytest.param("[1]", id="array"),
        pytest.param('"\\ud800"', id="lone-surrogate"),
        pytest.param("9" * 5000, id="5000-digits"),
    ],
)
def test_a_bad_ref_is_rejected_with_no_ref_to_echo(ref):
    text = '{"action": "join", "group": "room:a", "ref": ' + ref + "}"
    with pytest.raises(CommandRejected) as caught:
        parse(text)
    assert caught.value.code == "invalid_ref"
    assert caught.value.ref is None
    assert caught.value.detail.isascii()


def test_errors_after_the_ref_carry_it():
    with pytest.raises(CommandRejected) as caught:
        parse(frame(action="join", group="a b", ref=7))
    assert (caught.value.code, caught.value.ref) == ("invalid_group", 7)


def test_echo_must_be_a_boolean():
    with pytest.raises(CommandRejected) as caught:
        parse(frame(action="send", group="room:a", message="m", echo=0, ref="r"))
    assert (caught.value.code, caught.value.ref) == ("invalid_echo", "r")
