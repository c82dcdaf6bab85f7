"""Confirmed group sends: a broadcast that counts only what the receiving processes
say they handed on.

- The broadcaster picks a reply key and a time `by`, and stores the message with a
  mark (`@<reply id>:<by ms>`) in front of its tokens; the script tells it which
  members of which process box the message was stored for.
- Each process that takes the item hands it on (a session's sender returned, or the
  message went into the buffer `receive()` reads, within capacity) and answers once,
  before `by`, with one RPUSH naming the members it could not hand it to.
- The broadcaster waits until every box it stored for has answered or `by` passed;
  the members of a box that stayed silent (its process died or hangs) are failures.
"""

import secrets
from dataclasses import dataclass
from typing import Any

from ...errors import MemberUnreachable, SessionSendFailed
from .config import BLOCK_SECONDS
from .connections import Connections, command
from .keys import channel_name
from .util import REDIS_FAILURES, now_ms

GRACE_MS = 100  # what the broadcaster waits past `by` for answers under way
REPLY_TTL_MS = 60_000


@dataclass(frozen=True)
class Request:
    """One confirmed broadcast: where answers go and by when."""

    prefix: str
    id: str
    by_ms: int

    @classmethod
    def within(cls, prefix: str, seconds: float) -> "Request":
        return cls(prefix, secrets.token_hex(8), now_ms() + int(seconds * 1000))

    @property
    def mark(self) -> str:
        """What goes before the tokens of the stored item."""
        return f"@{self.id}:{self.by_ms} "

    @property
    def tag(self) -> str:
        return "r." + self.id

    @property
    def key(self) -> str:
        return reply_key(self.prefix, self.id)


def reply_key(prefix: str, reply_id: str) -> str:
    return f"{prefix}:{{r.{reply_id}}}:a"


def split_mark(tokens: list[str]) -> tuple[str | None, int, list[str]]:
    """(reply id, by in ms, tokens) of a stored item's tokens; no id: no mark."""
    if tokens and tokens[0].startswith("@"):
        reply_id, _, by = tokens[0][1:].partition(":")
        return reply_id, int(by), tokens[1:]
    return None, 0, tokens


Failure = tuple[str, str, str]  # token, kind ('s' session failed, 'x' not taken), why


def answer(box: str, failures: list[Failure]) -> bytes:
    """One process's answer: its box, then a line per member it could not serve."""
    lines = [box] + [f"{t} {kind} {' '.join(why.split())}" for t, kind, why in failures]
    return "\n".join(lines).encode()


def answer_commands(prefix: str, reply_id: str, data: bytes) -> list[Any]:
    key = reply_key(prefix, reply_id)
    tag = "r." + reply_id
    return [
        (tag, command("RPUSH", key, data)),
        (tag, command("PEXPIRE", key, REPLY_TTL_MS)),
    ]


async def collect(
    connections: Connections, request: Request, stored: dict[str, list[str]]
) -> list[BaseException]:
    """Wait for the answers of the boxes in `stored` (box -> tokens); return one
    failure per member that was not confirmed."""
    waiting = dict(stored)
    errors: list[BaseException] = []
    try:
        while waiting:
            left = (request.by_ms + GRACE_MS - now_ms()) / 1000
            if left <= 0:
                break
            client = connections.blocking_client(request.tag)
            wait = max(0.01, min(left, BLOCK_SECONDS))
            reply = await client.execute_command("BLPOP", request.key, wait)
            if reply is not None:
                errors += _read_answer(reply[1], waiting)
    except REDIS_FAILURES as exc:
        reason = f"Redis failed while it waited for confirmation: {exc!r}"
        return errors + _all_failed(waiting, reason)
    finally:
        await connections.execute_partial([(request.tag, command("DEL", request.key))])
    return errors + _all_failed(waiting, "its process did not confirm it in time")


def _read_answer(data: bytes, waiting: dict[str, list[str]]) -> list[BaseException]:
    box, *lines = data.decode().split("\n")
    if waiting.pop(box, None) is None:
        return []  # not one we wait for (a duplicate): ignore
    errors: list[BaseException] = []
    for line in lines:
        token, kind, why = line.split(" ", 2)
        name = channel_name(box, token)
        if kind == "s":
            errors.append(SessionSendFailed(name, RuntimeError(why)))
        else:
            errors.append(MemberUnreachable(name, why))
    return errors


def _all_failed(waiting: dict[str, list[str]], reason: str) -> list[BaseException]:
    return [
        MemberUnreachable(channel_name(box, token), reason)
        for box, tokens in waiting.items()
        for token in tokens
    ]
