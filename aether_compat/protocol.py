"""The WebSocket JSON commands of `AetherConsumer` as pure functions: a frame in, a
`Command` or a `CommandRejected` out, and the reply frames back. No I/O.

Client -> server, one JSON object per text frame:
    {"action": "join" | "leave", "group": "room:lobby"}
    {"action": "send", "group": "room:lobby", "message": "hello"}
Server -> client: `ChannelMessage` JSON whose `type` is `aether.joined`, `aether.left`,
`aether.sent` or `aether.error`, whose `target` is the group, and whose `payload` is a
JSON object as a string (`{"code": ..., "detail": ...}` for errors).
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

from .errors import CommandRejected
from .messages import ChannelMessage
from .names import GROUP_NAME_RULE, is_group_name
from .results import SendResult

Action = Literal["join", "leave", "send"]
ACTIONS: tuple[Action, ...] = ("join", "leave", "send")

JOINED = "aether.joined"
LEFT = "aether.left"
SENT = "aether.sent"
ERROR = "aether.error"
CHAT_MESSAGE = "chat.message"


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed client command; `message` is set only for `send`."""

    action: Action
    group: str
    message: str | None = None


class _Number:
    """A JSON number kept as text: commands hold no numbers, and converting a
    5,000-digit literal to int would raise (Python's int max str digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def parse_command(
    text_data: str | None, bytes_data: bytes | None, *, max_frame_bytes: int
) -> Command:
    """Turn one WebSocket frame into a `Command`; raise `CommandRejected` naming the
    first thing wrong with it."""
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
    action = _action(data)
    group = _group(data)
    if action != "send":
        return Command(action, group)
    return Command(action, group, _message(data))


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


# Frames back to the client


def reply_frame(type_: str, target: str | None, /, **fields: Any) -> str:
    """A reply as `ChannelMessage` JSON; `fields` become its JSON payload."""
    payload = json.dumps(fields, separators=(",", ":"))
    return ChannelMessage(type=type_, payload=payload, target=target).to_json()


def joined_frame(group: str) -> str:
    return reply_frame(JOINED, group, group=group)


def left_frame(group: str) -> str:
    return reply_frame(LEFT, group, group=group)


def sent_frame(group: str, result: SendResult) -> str:
    """The outcome of a `send`: how many members got the message, how many did not."""
    return reply_frame(
        SENT,
        group,
        group=group,
        sent_count=result.sent_count,
        failed_count=result.failed_count,
    )


def error_frame(error: CommandRejected, group: str | None = None) -> str:
    return reply_frame(ERROR, group, code=error.code, detail=error.detail)


def chat_message(command: Command, sender: str | None) -> ChannelMessage:
    """What a `send` command broadcasts: the text, who sent it and where."""
    if command.message is None:
        raise ValueError("chat_message() needs a 'send' command")
    return ChannelMessage(
        type=CHAT_MESSAGE,
        payload=command.message,
        sender=sender,
        target=command.group,
    )
