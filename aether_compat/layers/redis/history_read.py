"""What `group_history()` answers, from the entries the Redis history holds:
aether_compat.history's semantics (exactly the gap after `since`, or nothing)."""

from typing import Any

from ...history import History, Position
from .. import codec
from ..group_options import GroupOptions
from .config import Seal

Stored = tuple[int, int, list[str], bytes]
"""A stored entry: offset, time (ms), excluded channels, sealed message."""


def as_history(
    now: Position,
    entries: list[Stored],
    since: Position | None,
    limit: int | None,
    fresh_from: int,
    seal: Seal,
) -> History:
    """The group's position `now` and the entries read (from since + 1, or the
    newest ones without `since`) as a `History`; entries older than `fresh_from`
    (ms) have expired."""
    epoch, offset = now
    if since is None:
        fresh = [e for e in entries if e[1] >= fresh_from]
        return History(epoch, offset, messages_of(fresh, epoch, seal), True)
    missed = offset - since.offset
    if since.epoch != epoch or missed < 0 or (limit is not None and missed > limit):
        return History(epoch, offset, [], False)
    complete = len(entries) == missed and all(e[1] >= fresh_from for e in entries)
    messages = messages_of(entries, epoch, seal) if complete else []
    if len(messages) != missed:  # trimmed, expired, or one no key could open
        return History(epoch, offset, [], False)
    return History(epoch, offset, messages, True)


def messages_of(entries: list[Stored], epoch: str, seal: Seal) -> list[dict[str, Any]]:
    """The layer events of stored entries, each with its offset and epoch."""
    messages = []
    for offset, _, _, data in entries:
        payload = seal.open(data)
        if payload is not None:
            message = codec.decode(payload)
            message["offset"], message["epoch"] = offset, epoch
            messages.append(message)
    return messages


def parse_entry(item: bytes) -> Stored:
    head, data = item.split(b"\n", 1)
    offset, ms, *excluded = head.decode().split(" ")
    return int(offset), int(ms), excluded, data


def ttl_ms(options: GroupOptions) -> int:
    return max(1, int(options.history_ttl * 1000))
