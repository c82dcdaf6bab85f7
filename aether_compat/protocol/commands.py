"""Client commands as pure functions: a WebSocket frame in, a `Command` or a
`CommandRejected` out (docs/protocol.md lists them). No I/O.

    {"action": "join" | "leave", "group": "room:lobby", "ref": 7}
    {"action": "join", "group": "room:lobby", "since": {"epoch": "9f…", "offset": 41}}
    {"action": "send", "group": "room:lobby", "message": "hello", "echo": false}
    {"action": "ping" | "pong", "ref": "a1"}
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CommandRejected
from ..history import Position
from ..names import GROUP_NAME_RULE, is_group_name

Action = Literal["join", "leave", "send", "ping", "pong"]
ACTIONS: tuple[Action, ...] = ("join", "leave", "send", "ping", "pong")
GROUP_ACTIONS = frozenset(("join", "leave", "send"))

Ref = str | int
"""What a client tags a command with, to match its reply: 1-64 characters, or an
integer from 0 to 2**53 - 1 (the integers a JavaScript number holds exactly)."""
MAX_REF_LENGTH = 64
MAX_REF_INT = 2**53 - 1
MAX_EPOCH_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed client command: `group` is None only for `ping` and `pong`,
    `message` is set only for `send`; `echo=False` leaves the sender out of its own
    broadcast; `since` (join only) is the last position the client saw, to resume
    from."""

    action: Action
    group: str | None = None
    message: str | None = None
    ref: Ref | None = None
    echo: bool = True
    since: Position | None = None


class _Number:
    """A JSON number kept as text: commands hold no numbers, and converting a
    5,000-digit literal to int would raise (Python's int max str digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def parse_command(
    text_data: str | None,
    bytes_data: bytes | None,
    *,
    max_frame_bytes: int,
    strict: bool = False,
) -> Command:
    """Turn one WebSocket frame into a `Command`; raise `CommandRejected` naming the
    first thing wrong with it. `strict` (aether.v1) refuses fields the action does
    not take, as the protocol's schema does; legacy clients' extra fields are
    ignored, as they always were."""
    if text_data is None:
        size = len(bytes_data or b"")
        raise CommandRejected(
            "binary_frame",
            f"commands are JSON text frames; got a binary frame of {size} bytes",
        )
    size = utf8_size(text_data)
    if size > max_frame_bytes:
        raise CommandRejected(
            "frame_too_large",
            f"a command frame may hold at most {max_frame_bytes} bytes, got {size}",
        )
    data = _load_json(text_data)
    if not isinstance(data, dict):
        raise CommandRejected(
            "not_object",
            f"a command must be a JSON object, got {_json_kind(data)}",
        )
    ref = _ref(data)
    try:
        command = _command(data, ref)
        if strict:
            _refuse_unknown_fields(command.action, data)
        return command
    except CommandRejected as exc:
        exc.ref = ref
        raise


def _command(data: dict[str, Any], ref: Ref | None) -> Command:
    action = _action(data)
    if action not in GROUP_ACTIONS:
        return Command(action, ref=ref)
    group = _group(data)
    if action == "join" and "since" in data:
        return Command(action, group, ref=ref, since=_since(data["since"]))
    if action != "send":
        return Command(action, group, ref=ref)
    return Command(action, group, _message(data), ref, _echo(data))


FIELDS: dict[str, frozenset[str]] = {
    "join": frozenset(("action", "group", "ref", "since")),
    "leave": frozenset(("action", "group", "ref")),
    "send": frozenset(("action", "group", "message", "ref", "echo")),
    "ping": frozenset(("action", "ref")),
    "pong": frozenset(("action", "ref")),
}


def _refuse_unknown_fields(action: str, data: dict[str, Any]) -> None:
    unknown = [key for key in data if key not in FIELDS[action]]
    if unknown:
        shown = ", ".join(_show(key) for key in unknown[:5])
        raise CommandRejected(
            "unknown_field",
            f"{action!r} takes {', '.join(sorted(FIELDS[action]))}; got {shown}",
        )


def utf8_size(text: str) -> int:
    """Bytes `text` takes on the wire (a lone surrogate counts as its 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_Number,
        )
    except RecursionError:
        raise CommandRejected(
            "not_json", "the frame is JSON nested too deeply to be a command"
        ) from None
    except ValueError as exc:
        raise CommandRejected(
            "not_json", f"the frame is not valid JSON: {exc}"
        ) from None


def _action(data: dict[str, Any]) -> Action:
    action = data.get("action")
    if action not in ACTIONS:
        got = "no action" if "action" not in data else f"action {_show(action)}"
        raise CommandRejected(
            "unknown_action",
            f"action must be one of {', '.join(ACTIONS)}; got {got}",
        )
    return action


def _group(data: dict[str, Any]) -> str:
    if "group" not in data:
        raise CommandRejected("missing_group", "the command needs a 'group'")
    group = data["group"]
    if not is_group_name(group):
        raise CommandRejected(
            "invalid_group", f"group must be {GROUP_NAME_RULE}; got {_show(group)}"
        )
    return group


def _ref(data: dict[str, Any]) -> Ref | None:
    """The command's `ref`, read before anything else so that every later error
    can echo it."""
    if "ref" not in data:
        return None
    ref = data["ref"]
    if isinstance(ref, str) and 0 < len(ref) <= MAX_REF_LENGTH and _encodable(ref):
        return ref
    if isinstance(ref, _Number) and ref.text.isdigit() and len(ref.text) <= 16:
        number = int(ref.text)
        if number <= MAX_REF_INT:
            return number
    raise CommandRejected(
        "invalid_ref",
        f"ref must be a string of 1-{MAX_REF_LENGTH} characters or an integer "
        f"from 0 to 2**53 - 1; got {_show(ref)}",
    )


def _since(since: Any) -> Position:
    """A join's `since`: {"epoch": non-empty string, "offset": integer >= 0}."""
    if isinstance(since, dict) and set(since) == {"epoch", "offset"}:
        epoch, offset = since["epoch"], since["offset"]
        if (
            isinstance(epoch, str)
            and 0 < len(epoch) <= MAX_EPOCH_LENGTH
            and _encodable(epoch)
            and isinstance(offset, _Number)
            and offset.text.isdigit()
            and len(offset.text) <= 16
            and int(offset.text) <= MAX_REF_INT
        ):
            return Position(epoch, int(offset.text))
    raise CommandRejected(
        "invalid_since",
        'since must be {"epoch": a string of 1-64 characters, "offset": an integer '
        f"from 0 to 2**53 - 1}}; got {_show(since)}",
    )


def _echo(data: dict[str, Any]) -> bool:
    echo = data.get("echo", True)
    if not isinstance(echo, bool):
        raise CommandRejected(
            "invalid_echo", f"echo must be true or false; got {_show(echo)}"
        )
    return echo


def _message(data: dict[str, Any]) -> str:
    message = data.get("message")
    if not isinstance(message, str):
        got = "nothing" if "message" not in data else _json_kind(message)
        raise CommandRejected(
            "invalid_message", f"'send' needs a string 'message', got {got}"
        )
    if not _encodable(message):
        raise CommandRejected(
            "invalid_unicode",
            "the message holds a lone surrogate, which UTF-8 cannot carry",
        )
    return message


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_kind(value: Any) -> str:
    if isinstance(value, _Number):
        return "a number"
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), "null")


def _show(value: Any) -> str:
    """A short, ASCII-only rendering of a client value for an error detail."""
    if isinstance(value, _Number):
        value = value.text
    elif not isinstance(value, str):
        return _json_kind(value)
    shown = ascii(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
