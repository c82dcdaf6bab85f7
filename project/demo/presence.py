"""Who is in a chat room, as the demo shows it: the layer's presence (one entry per
person across tabs and servers, told to the page as a state and then diffs), with
the name each person goes by. Nothing is written per connection."""

from typing import Any

from aether_compat import Channels
from aether_compat.presence import presence_key

GUEST_DIGITS = 12
"""Hex digits of a guest's name: 48 bits, so two guests practically never share
one."""


def guest_name(key: str) -> str:
    """The name of an anonymous member: from its opaque presence key ("anon-" and
    hex digits; nobody can compute it from the channel, nor choose it), so a page
    that only has the key derives the same name (chat.html does)."""
    return "guest-" + key.removeprefix("anon-")[:GUEST_DIGITS]


def own_guest_name(channel: str) -> str:
    """The guest name of this process's connection `channel` (its key as the layer
    derives it for a membership without a user)."""
    return guest_name(presence_key({}, channel))


def with_name(meta: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """A membership's metadata with the display name the member list shows."""
    return {**(meta or {}), "name": name}


async def people(group: str) -> dict[str, int]:
    """How many connections `group` has and how many people they are (across
    processes on Redis), from the layer's presence."""
    stats = await Channels.group(group).presence_stats()
    return {"members": stats.connections, "people": stats.users}
