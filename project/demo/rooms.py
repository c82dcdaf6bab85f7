"""The room-name rule, defined once: the names the HTTP and WebSocket routes
(`<room:room>`), the views and the home page's form accept, and the group a room's
members share (models, views and the chat consumer use `room_group`)."""

import re

ROOM_NAME_MAX_LENGTH = 60
# Also the HTML `pattern` of the home page's form: browsers compile that with the `v`
# flag, under which a literal `-` in a character class must be escaped.
ROOM_NAME_PATTERN = rf"[A-Za-z0-9_\-]{{1,{ROOM_NAME_MAX_LENGTH}}}"
_ROOM_NAME = re.compile(ROOM_NAME_PATTERN, re.ASCII)


def is_room_name(name: str) -> bool:
    return _ROOM_NAME.fullmatch(name) is not None


def room_group(name: str) -> str:
    """The channel-layer group of room `name`."""
    return f"room:{name}"


class RoomNameConverter:
    """The `room` path converter."""

    regex = ROOM_NAME_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
