"""Frames back to the client, in the two dialects of docs/protocol.md.

- legacy (no subprotocol): replies are `ChannelMessage` JSON whose `target` is the
  group and whose `payload` is a JSON object as a string (with the command's `ref`
  when it had one); group messages go as the raw text broadcast.
- `aether.v1`: every frame is one flat JSON object with a `type`; group messages
  arrive as typed `aether.message` frames.

A `Dialect` builds every frame of one connection, so the consumer never asks which
dialect it speaks.
"""

import json
from typing import Any

from ..errors import CommandRejected
from ..messages import ChannelMessage
from ..results import SendResult
from .commands import Command, Ref

SUBPROTOCOL_V1 = "aether.v1"

JOINED = "aether.joined"
LEFT = "aether.left"
SENT = "aether.sent"
ERROR = "aether.error"
PONG = "aether.pong"
PING = "aether.ping"
CHAT_MESSAGE = "chat.message"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# Legacy frames


def reply_frame(type_: str, target: str | None, /, **fields: Any) -> str:
    """A reply as `ChannelMessage` JSON; `fields` become its JSON payload."""
    payload = json.dumps(fields, separators=(",", ":"))
    return ChannelMessage(type=type_, payload=payload, target=target).to_json()


def _with_ref(fields: dict[str, Any], ref: Ref | None) -> dict[str, Any]:
    if ref is not None:
        fields["ref"] = ref
    return fields


def joined_frame(
    group: str,
    ref: Ref | None = None,
    recovered: bool | None = None,
    epoch: str | None = None,
    offset: int | None = None,
) -> str:
    """A join's reply: `recovered` answers a join with `since` (None without one),
    `epoch`/`offset` are the group's position (None without history)."""
    fields = {"group": group, "recovered": recovered, "epoch": epoch, "offset": offset}
    return reply_frame(JOINED, group, **_with_ref(fields, ref))


def left_frame(group: str, ref: Ref | None = None) -> str:
    return reply_frame(LEFT, group, **_with_ref({"group": group}, ref))


def sent_frame(group: str, result: SendResult, ref: Ref | None = None) -> str:
    """The outcome of a `send`: how many members got the message, how many did not."""
    fields = {
        "group": group,
        "sent_count": result.sent_count,
        "failed_count": result.failed_count,
    }
    return reply_frame(SENT, group, **_with_ref(fields, ref))


def error_frame(
    error: CommandRejected, group: str | None = None, ref: Ref | None = None
) -> str:
    fields = {"code": error.code, "detail": error.detail}
    return reply_frame(ERROR, group, **_with_ref(fields, ref))


def pong_frame(ref: Ref | None = None) -> str:
    return reply_frame(PONG, None, **_with_ref({}, ref))


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


# aether.v1 frames


def v1_frame(type_: str, **fields: Any) -> str:
    """A flat v1 frame: `{"type": ..., **fields}`."""
    return _dumps({"type": type_, **fields})


def v1_message(
    group: str | None,
    sender: str | None,
    data: str,
    offset: int | None = None,
    epoch: str | None = None,
) -> str:
    """A typed `aether.message` frame (`offset`/`epoch`: its position in a group
    that keeps history). It runs once per receiver of a broadcast, and every
    receiver of one broadcast asks for the same frame: the last one is kept, and
    comparing equal strings costs far less than escaping them again."""
    global _last
    last = _last
    if (
        data == last[2]
        and offset == last[4]
        and sender == last[1]
        and group == last[0]
        and epoch == last[5]
    ):
        return last[3]
    frame = _message_frame(group, sender, data, offset, epoch)
    _last = (group, sender, data, frame, offset, epoch)
    return frame


def _message_frame(
    group: str | None,
    sender: str | None,
    data: str,
    offset: int | None,
    epoch: str | None,
) -> str:
    # Group names need no escaping (see names.py): only the sender and data do.
    return (
        '{"type":"aether.message","group":'
        + ("null" if group is None else f'"{group}"')
        + ',"sender":'
        + ("null" if sender is None else _dumps(sender))
        + ',"data":'
        + _dumps(data)
        + ',"offset":'
        + ("null" if offset is None else str(int(offset)))
        + ',"epoch":'
        + ("null" if epoch is None else _dumps(epoch))
        + "}"
    )


_last: tuple[Any, ...] = (
    None,
    None,
    "",
    _message_frame(None, None, "", None, None),
    None,
    None,
)


# Dialects


class LegacyDialect:
    """The frames of releases before `aether.v1`; no heartbeats."""

    subprotocol: str | None = None
    heartbeats = False
    strict = False  # extra command fields are ignored, as they always were

    def joined(
        self,
        group: str,
        ref: Ref | None,
        recovered: bool | None = None,
        epoch: str | None = None,
        offset: int | None = None,
    ) -> str:
        return joined_frame(group, ref, recovered, epoch, offset)

    def left(self, group: str, ref: Ref | None) -> str:
        return left_frame(group, ref)

    def sent(self, group: str, result: SendResult, ref: Ref | None) -> str:
        return sent_frame(group, result, ref)

    def error(self, error: CommandRejected, group: str | None, ref: Ref | None) -> str:
        return error_frame(error, group, ref)

    def pong(self, ref: Ref | None) -> str:
        return pong_frame(ref)

    def ping(self) -> str:
        raise NotImplementedError("legacy connections get no heartbeats")

    def message(self, event: dict[str, Any], text: str) -> str:
        """A group message as the socket gets it: the raw text."""
        return text

    def push(self, text: str) -> str:
        return text


class V1Dialect:
    """The `aether.v1` frames: flat, typed, every reply with its `ref`."""

    subprotocol: str | None = SUBPROTOCOL_V1
    heartbeats = True
    strict = True  # commands with fields the schema does not declare are refused

    def joined(
        self,
        group: str,
        ref: Ref | None,
        recovered: bool | None = None,
        epoch: str | None = None,
        offset: int | None = None,
    ) -> str:
        return v1_frame(
            JOINED,
            ref=ref,
            group=group,
            recovered=recovered,
            epoch=epoch,
            offset=offset,
        )

    def left(self, group: str, ref: Ref | None) -> str:
        return v1_frame(LEFT, ref=ref, group=group)

    def sent(self, group: str, result: SendResult, ref: Ref | None) -> str:
        return v1_frame(
            SENT,
            ref=ref,
            group=group,
            sent_count=result.sent_count,
            failed_count=result.failed_count,
        )

    def error(self, error: CommandRejected, group: str | None, ref: Ref | None) -> str:
        return v1_frame(
            ERROR, ref=ref, group=group, code=error.code, detail=error.detail
        )

    def pong(self, ref: Ref | None) -> str:
        return v1_frame(PONG, ref=ref)

    def ping(self) -> str:
        return '{"type":"aether.ping"}'

    def message(self, event: dict[str, Any], text: str) -> str:
        """A group message as a typed frame; events sent without the facade carry
        no group (null), and events of groups without history no position."""
        return v1_message(
            event.get("group"),
            event.get("sender"),
            text,
            event.get("offset"),
            event.get("epoch"),
        )

    def push(self, text: str) -> str:
        return v1_message(None, None, text)


Dialect = LegacyDialect | V1Dialect

LEGACY = LegacyDialect()
AETHER_V1 = V1Dialect()


def pick_dialect(offered: list[str] | tuple[str, ...] | None) -> Dialect:
    """The dialect for the subprotocols a client offered: v1 when it asked for it."""
    return AETHER_V1 if offered and SUBPROTOCOL_V1 in offered else LEGACY
