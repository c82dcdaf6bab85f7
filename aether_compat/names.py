"""Aether-style names (`room:lobby`) checked once, and carried over stock Channels
layers, whose group names cannot hold `:`.

Translation for stock layers, chosen so that two different names never share a group:

- a name without `:` that does not start with `aether.` passes unchanged, so plain
  Channels code using the same group (`chat_lobby`) still meets facade callers there;
- every other name becomes `aether.` + the name with each `.` doubled and each `:`
  written `._` (`room:lobby` -> `aether.room._lobby`, `a.b:c` -> `aether.a..b._c`).

Unchanged names never start with `aether.`, translated ones always do, and the escape is
a prefix code (after the marker, a `.` always starts a pair `..` or `._`), so the
mapping is injective and `caller_group_name` undoes it. A translated name must still be
shorter than 100 characters; a longer one raises `TypeError` rather than being
shortened, because shortening (hashing) could make two names collide.
"""

import re
from typing import Any

from channels.layers import BaseChannelLayer

MAX_NAME_LENGTH = BaseChannelLayer.MAX_NAME_LENGTH
STOCK_MARKER = "aether."

# ASCII only before the `!` (Python's \d would also take other scripts' digits); the
# local part after it is Unicode-aware, as in Channels.
_GROUP_NAME = re.compile(r"[a-zA-Z0-9\-_.:]+")
_CHANNEL_NAME = re.compile(r"[a-zA-Z0-9\-_.]+(![\w\-.]*)?")
_GROUP_RULE = (
    BaseChannelLayer.invalid_name_error.format("Group")
    + " Group names may also contain colons (Aether style: 'room:lobby')."
)
_CHANNEL_RULE = BaseChannelLayer.invalid_name_error.format("Channel")
_ESCAPED_BODY = re.compile(r"(?:[a-zA-Z0-9\-_]|\.\.|\._)+")
_ESCAPE_PAIR = re.compile(r"\.[._]")
_UNESCAPE = {"..": ".", "._": ":"}


GROUP_NAME_RULE = "1-99 ASCII letters, digits, '-', '_', '.' or ':'"
"""The group-name rule in a few words, for error messages to clients."""


def is_group_name(name: Any) -> bool:
    """Whether `name` is a valid Aether group name (Channels' rule plus `:`)."""
    return (
        isinstance(name, str)
        and len(name) < MAX_NAME_LENGTH
        and _GROUP_NAME.fullmatch(name) is not None
    )


def check_group_name(name: Any) -> str:
    """Return `name` if it is a valid Aether group name, else raise `TypeError`."""
    if is_group_name(name):
        return name
    raise TypeError(f"{_GROUP_RULE} Got {name!r}.")


def check_channel_name(name: Any) -> str:
    """Return `name` if it is a valid channel (session) name, else raise `TypeError`."""
    if type(name) is str and name in _seen_channel_names:
        return name
    if (
        isinstance(name, str)
        and len(name) < MAX_NAME_LENGTH
        and _CHANNEL_NAME.fullmatch(name)
    ):
        if len(_seen_channel_names) >= _SEEN_LIMIT:
            _seen_channel_names.clear()
        _seen_channel_names.add(name)
        return name
    raise TypeError(f"{_CHANNEL_RULE} Got {name!r}.")


# Names that passed the check recently: consumers send to and receive on the same
# few names over and over, and a set lookup is a fraction of the regex's cost.
_seen_channel_names: set[str] = set()
_SEEN_LIMIT = 65_536


def stock_group_name(name: str) -> str:
    """The group name a stock layer accepts for the Aether group `name`."""
    check_group_name(name)
    if ":" not in name and not name.startswith(STOCK_MARKER):
        return name
    translated = STOCK_MARKER + name.replace(".", "..").replace(":", "._")
    if len(translated) >= MAX_NAME_LENGTH:
        raise TypeError(
            f"Group name {name!r} is too long for a stock channel layer: translated "
            f"for it ({STOCK_MARKER!r} prefix, ':' as '._', '.' as '..') it has "
            f"{len(translated)} characters, and stock layers take at most "
            f"{MAX_NAME_LENGTH - 1}. Use a shorter name, or an aether_compat layer, "
            "which takes colons as they are."
        )
    return translated


def caller_group_name(stock_name: str) -> str:
    """Undo `stock_group_name`: the Aether name a stock group name stands for.

    Raises `ValueError` for a name `stock_group_name` never produces.
    """
    if not stock_name.startswith(STOCK_MARKER):
        return stock_name
    body = stock_name[len(STOCK_MARKER) :]
    if not _ESCAPED_BODY.fullmatch(body):
        raise ValueError(f"{stock_name!r} is not a translated Aether group name")
    name = _ESCAPE_PAIR.sub(lambda pair: _UNESCAPE[pair[0]], body)
    if ":" not in name and not name.startswith(STOCK_MARKER):
        raise ValueError(f"{stock_name!r} is not a translated Aether group name")
    return name
