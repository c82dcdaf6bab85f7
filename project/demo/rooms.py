"""The room-name rule, defined once: the names the HTTP and WebSocket routes
(`<room:room>`), the views and the home page's form accept, and the group a room's
members share (models, views and the chat consumer use `room_group`)."""

import re

ROOM_NAME_MAX_LENGTH = 60
# Also the HTML `pattern` of the home page's form: browsers compile that with the `v`
# flag, under which a literal `-` in a character class must be escaped.
ROOM_NAME_PATTERN = rf"[A-Za-z0-9_\-]{{1,{ROOM_NAME_MAX_LENGTH}}}"
_ROOM_NAME = re.compile(ROOM_NAME_PATTERN, re.ASCII)
ROOM_PREFIX = "room:"


def is_room_name(name: str) -> bool:
    return _ROOM_NAME.fullmatch(name) is not None


def check_room_name(name: str) -> str | None:
    """Why `name` is not a room name, in words a visitor can act on; None when it
    is one. The page shows this instead of sending them to another room."""
    if is_room_name(name):
        return None
    if not name:
        return "Give the room a name."
    if len(name) > ROOM_NAME_MAX_LENGTH:
        return (
            f"A room name has at most {ROOM_NAME_MAX_LENGTH} characters; this one "
            f"has {len(name)}."
        )
    if any(char.isspace() for char in name):
        return "A room name has no spaces: join words with - or _ (design-review)."
    bad = next(char for char in name if not _ROOM_NAME.fullmatch(char))
    return (
        f"A room name uses only the letters A-Z and a-z, digits, - and _; "
        f"{bad!r} is not one of them."
    )


def room_group(name: str) -> str:
    """The channel-layer group of room `name`."""
    return f"{ROOM_PREFIX}{name}"


def room_of(group: str | None) -> str | None:
    """The room whose group is `group`, or None for any other group."""
    if group is None or not group.startswith(ROOM_PREFIX):
        return None
    name = group.removeprefix(ROOM_PREFIX)
    return name if is_room_name(name) else None


class RoomNameConverter:
    """The `room` path converter."""

    regex = ROOM_NAME_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
