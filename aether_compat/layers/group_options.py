"""Per-group-pattern options: the one setting through which a group opts in to what
costs something per message or per member (history, the last message for late
joiners, presence events). Groups that match no pattern get `NO_OPTIONS` and pay
nothing for features they do not use.

    CHANNEL_LAYERS = {"default": {"BACKEND": ..., "CONFIG": {"group_options": {
        "room:*": {"history_size": 100, "history_ttl": 300, "presence_events": True},
        "dashboard:*": {"history_size": 1, "history_ttl": 60, "last_on_join": True},
    }}}}

Patterns are globs (or compiled regular expressions) matched against the whole
group name; the first matching pattern wins, in the order given, as for Channels'
`channel_capacity`.
"""

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from re import Pattern
from typing import Any, Self

MAX_HISTORY_SIZE = 10_000
"""A bound on `history_size`: history is replayed into one connection at a time."""

_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """What one group has opted in to; the defaults are "nothing"."""

    history_size: int = 0
    """Messages kept per group for resume and `history()` (0: no history)."""
    history_ttl: float = 0.0
    """Seconds a message stays in history; required when `history_size` is set."""
    last_on_join: bool = False
    """A new member is handed the group's newest message when it joins."""
    presence_events: bool = False
    """Members get the group's presence state on join, then join/leave diffs."""
    presence_grace: float = 5.0
    """Seconds a user's leave waits for the same user to come back (a reload, a
    reconnect) before it is announced; a return within it announces nothing."""

    def __post_init__(self) -> None:
        _check_int("history_size", self.history_size, 0, MAX_HISTORY_SIZE)
        _check_number("history_ttl", self.history_ttl)
        _check_number("presence_grace", self.presence_grace)
        _check_bool("last_on_join", self.last_on_join)
        _check_bool("presence_events", self.presence_events)
        if self.history_size and self.history_ttl <= 0:
            raise ValueError(
                "group_options: history_size needs a positive history_ttl "
                "(seconds a message stays in history)"
            )
        if self.last_on_join and not self.history_size:
            raise ValueError(
                "group_options: last_on_join hands out the newest message of the "
                "group's history, so it needs history_size >= 1"
            )

    @property
    def keeps_history(self) -> bool:
        return self.history_size > 0

    @classmethod
    def from_mapping(cls, pattern: str, values: Mapping[str, Any]) -> Self:
        """Options from settings; an unknown key raises `TypeError` naming the known
        ones, so that a typo does not silently turn a feature off."""
        if not isinstance(values, Mapping):
            raise TypeError(
                f"group_options[{pattern!r}] must be a dict of options, "
                f"got {type(values).__name__}"
            )
        known = [field.name for field in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(
                f"group_options[{pattern!r}] has unknown key(s) {unknown}; "
                f"known keys: {known}"
            )
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc} (in group_options[{pattern!r}])") from None


class GroupOptionTable:
    """The compiled `group_options` setting: `for_group(name)` is the options of the
    first matching pattern, memoised, since it is asked on every broadcast."""

    __slots__ = ("_memo", "_rules")

    def __init__(
        self, settings: Mapping[str | Pattern[str], Mapping[str, Any]] | None = None
    ) -> None:
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(
                "group_options must be a dict of {group pattern: options}, "
                f"got {type(settings).__name__}"
            )
        self._rules: list[tuple[Pattern[str], GroupOptions]] = [
            (_compile(pattern), GroupOptions.from_mapping(str(pattern), values))
            for pattern, values in (settings or {}).items()
        ]
        self._memo: dict[str, GroupOptions] = {}

    def __bool__(self) -> bool:
        """Whether any group has options at all (else callers skip the lookup)."""
        return bool(self._rules)

    def for_group(self, group: str) -> GroupOptions:
        options = self._memo.get(group)
        if options is not None:
            return options
        options = next(
            (found for pattern, found in self._rules if pattern.fullmatch(group)),
            NO_OPTIONS,
        )
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[group] = options
        return options


def _compile(pattern: Any) -> Pattern[str]:
    if isinstance(pattern, Pattern):
        return pattern
    if not isinstance(pattern, str) or not pattern:
        raise TypeError(
            "group_options keys must be glob patterns (non-empty strings) or "
            f"compiled regular expressions, got {pattern!r}"
        )
    return re.compile(fnmatch.translate(pattern))


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


NO_OPTIONS = GroupOptions()
"""The options of a group that matches no pattern: nothing opted in."""
