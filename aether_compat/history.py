"""Positions and history of groups that keep history (see `group_options`).

Every message of such a group gets a position: an `offset` that grows by one per
message in that group, and an `epoch` that changes whenever the group's stream was
lost (a Redis restart without data, a flush, history that expired, a restart of the
in-memory layer's process). Receivers see both on the layer event, as the keys
`"offset"` and `"epoch"`; a client that remembers the last position it saw can ask
for exactly what it missed, or learn that it cannot get it (`recovered=False`).
"""

from dataclasses import dataclass, field
from typing import Any, NamedTuple

POSITION_KEYS = ("offset", "epoch")
"""The keys a layer sets on every event of a history group (a sender's own values
for them are replaced)."""


class Position(NamedTuple):
    """Where a message stands in its group's stream."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class History:
    """What `group_history()` found.

    `epoch`/`offset` are the group's current position (the newest message's offset;
    0 and a fresh epoch for a group with no message yet). `messages` are layer
    events, oldest first, each carrying its own "offset" and "epoch". When `since`
    was given, `recovered` is True only if `messages` is exactly everything after
    `since` (same epoch, none of the gap trimmed or expired, within `limit`);
    otherwise nothing is returned and `recovered` is False, so the caller reloads its
    state instead of showing a list with a hole in it. Without `since`, `recovered`
    is True when the group keeps history.
    """

    epoch: str
    offset: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    recovered: bool = False

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    @classmethod
    def none(cls) -> "History":
        """What `group_history()` says of a group that keeps no history."""
        return cls(epoch="", offset=0, messages=[], recovered=False)


def check_since(since: Any) -> Position | None:
    """`since` as a `Position`, or a `TypeError` that says what it must be."""
    if since is None:
        return None
    if isinstance(since, Position):
        return since
    try:
        epoch, offset = since
    except (TypeError, ValueError):
        raise TypeError(
            f"since must be an (epoch, offset) pair, got {since!r}"
        ) from None
    if not isinstance(epoch, str) or not epoch:
        raise TypeError(f"since: the epoch must be a non-empty string, got {epoch!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise TypeError(f"since: the offset must be an integer >= 0, got {offset!r}")
    return Position(epoch, offset)


def check_limit(limit: Any) -> int | None:
    """`limit` checked: None or a positive integer."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise TypeError(f"limit must be a positive integer or None, got {limit!r}")
    return limit
