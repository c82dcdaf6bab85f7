"""What the fuzz tests (test_fuzz.py) send and expect: generated WebSocket frames,
good and bad, and an independent model of the command protocol's rules, written
from docs/protocol.md (not from the protocol package), that says which reply each
frame earns."""

import json
import re
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FRAMES_PER_PATH = 10_000
PER_EXAMPLE = 10
MAX_FRAME = 64 * 1024  # the default max_frame_bytes
MAX_GROUPS = 100  # the default max_groups
REPLIES = {
    "join": "aether.joined",
    "leave": "aether.left",
    "send": "aether.sent",
    "ping": "aether.pong",
}
GROUP_RULE = re.compile(r"[A-Za-z0-9_.:\-]{1,99}", re.ASCII)
ANONYMOUS_GROUPS = ("room:", "chat:")  # the demo lets anonymous users into rooms


# The model: what docs/protocol.md says each frame deserves


class ProtocolModel:
    """The reply one connection owes each frame, and the groups it is in."""

    def __init__(self) -> None:
        self.joined: set[str] = set()
        self.over_max_groups = 0

    def expected_reply(self, frame: str | bytes) -> str:
        command = self._command(frame)
        if command is None:
            return "aether.error"
        action, group = command
        if action == "join":
            if group not in self.joined and len(self.joined) >= MAX_GROUPS:
                self.over_max_groups += 1
                return "aether.error"
            self.joined.add(group)
        elif action == "leave":
            self.joined.discard(group)
        return REPLIES[action]

    def _command(self, frame: str | bytes) -> tuple[str, str] | None:
        if isinstance(frame, bytes):
            return None
        if len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME:
            return None
        try:
            data = json.loads(frame, parse_int=Decimal, parse_float=Decimal)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        if "ref" in data and not _ref(data["ref"]):
            return None
        action = data.get("action")
        if action == "ping":
            return action, ""
        if not isinstance(action, str) or action not in REPLIES:
            return None
        group = data.get("group")
        if not isinstance(group, str) or not GROUP_RULE.fullmatch(group):
            return None
        if not group.startswith(ANONYMOUS_GROUPS):
            return None
        if action == "send" and not _utf8_text(data.get("message")):
            return None
        return action, group


def _ref(value: object) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= 64 and _utf8_text(value)
    return (
        isinstance(value, Decimal)
        and value == value.to_integral_value()
        and value.as_tuple().exponent == 0
        and not value.is_signed()
        and value <= 2**53 - 1
    )


def _utf8_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Frames: mostly commands, good and bad, plus anything else a client might send

WIRE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
ANY_TEXT = st.text(max_size=200)  # lone surrogates too (only in-process)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
GOOD_GROUPS = st.from_regex(r"(room|chat):[a-z0-9]{1,3}", fullmatch=True)
GROUPS = st.one_of(
    GOOD_GROUPS,
    GOOD_GROUPS,
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,110}", fullmatch=True),
    st.sampled_from(
        [
            *("", "a b", "a!b", "rööm", "room:\u0663", "room:\n", "g" * 99, "g" * 100),
            *("user:1", "user:None", "dashboard:staff", "room:" + "x" * 94),
        ]
    ),
    ANY_TEXT,
    JSON_VALUES,
)
ACTIONS = st.one_of(
    st.sampled_from(list(REPLIES)), st.sampled_from(["JOIN", "", "dance"]), JSON_VALUES
)
MESSAGES = st.one_of(ANY_TEXT, JSON_VALUES, st.just("\ud800"), st.just("a\udfffb"))
COMMANDS = st.fixed_dictionaries(
    {},
    optional={
        "action": ACTIONS,
        "group": GROUPS,
        "message": MESSAGES,
        "extra": JSON_VALUES,
    },
)


def _near_the_limit(size: int) -> str:
    head = '{"action":"send","group":"room:big","message":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def _valid(action: str, group: str, message: str) -> str:
    frame = {"action": action, "group": group}
    if action == "send":
        frame["message"] = message
    return json.dumps(frame)


def frames_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[list[str | bytes]]:
    """Commands as JSON (lone surrogates arrive escaped), plus mangled JSON, other
    JSON values, plain text, binary frames, deep nesting, huge numbers and frames
    around the size limit. Nesting stays clear of the parser's recursion limit
    (~1,000), where the outcome would depend on the caller's stack depth."""
    commands = COMMANDS.map(json.dumps)
    valid = st.builds(_valid, st.sampled_from(list(REPLIES)), GOOD_GROUPS, text)
    depth = st.integers(1, 400) | st.integers(2_000, 20_000)
    frame = st.one_of(
        valid,
        valid,
        commands,
        commands,
        st.tuples(commands, st.integers(0, 300)).map(lambda pair: pair[0][: pair[1]]),
        JSON_VALUES.map(json.dumps),
        text,
        st.binary(max_size=300),
        depth.map(lambda n: "[" * n + "]" * n),
        depth.map(lambda n: '{"action":"send","group":"room:a","message":' + "[" * n),
        st.integers(4_000, 6_000).map(lambda n: "9" * n),
        st.integers(4_000, 6_000).map(
            lambda n: '{"action":"join","group":"room:n","x":' + "9" * n + "}"
        ),
        st.integers(MAX_FRAME - 20, MAX_FRAME + 20).map(_near_the_limit),
    )
    # Ten frames per example: Hypothesis spends more on each example than daphne
    # on a frame, and the frames of one example still shrink one by one.
    return st.lists(frame, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE)


FUZZ = settings(
    max_examples=FRAMES_PER_PATH // PER_EXAMPLE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_reply(model: ProtocolModel, frame: str | bytes, replies: list[dict]):
    """The frames a connection sent back for `frame`: broadcasts of a `send`, then
    exactly one reply, of the kind the model expects."""
    *broadcasts, reply = replies
    expected = model.expected_reply(frame)
    assert reply["type"] == expected, (frame[:200], reply)
    assert all(b["type"] == "chat.message" for b in broadcasts), broadcasts
    payload = json.loads(reply["payload"])
    if expected == "aether.error":
        assert payload["code"]
        assert payload["detail"].isascii()
