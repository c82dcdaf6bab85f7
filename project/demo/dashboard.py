"""The numbers the staff dashboard shows: groups, their connections and people
(from the layer's presence stats), and this process's message rate over the last
minute."""

import os

from django.contrib.auth import get_user_model

from aether_compat import Channels
from aether_compat.messages import now_ms

from .models import Room
from .presence import people
from .stats import stats

STAFF_GROUP = "dashboard:staff"
MAX_LISTED = 50
RATE_SECONDS = 5


async def known_groups() -> list[str]:
    """The groups the demo knows of: the staff group, rooms (most recently active
    first), personal groups."""
    recent = Room.objects.order_by("-last_activity", "name")[:MAX_LISTED]
    rooms = [room.group async for room in recent]
    users = get_user_model().objects.order_by("pk").values_list("pk", flat=True)
    personal = [f"user:{pk}" async for pk in users[:MAX_LISTED]]
    return [STAFF_GROUP, *rooms, *personal]


async def listed_groups() -> list[dict[str, object]]:
    """The known groups that have members now, with their connections (`members`)
    and distinct people (`people`: one per user across tabs and servers, one per
    guest connection): a user who is not connected has an empty `user:N` group,
    which the page does not list."""
    groups = []
    for name in await known_groups():
        counts = await people(name)
        if counts["members"]:
            groups.append({"group": name, **counts})
    return groups


async def snapshot() -> dict[str, object]:
    """Everything the page draws; `at` (Unix ms) is when counting began."""
    at = now_ms()
    groups = await listed_groups()
    series = stats.series()
    recent = series[-RATE_SECONDS - 1 : -1]  # whole seconds only
    return {
        "at": at,
        "groups": groups,
        "total_members": sum(row["members"] for row in groups),
        "messages_per_second": sum(p["messages"] for p in recent) / RATE_SECONDS,
        "deliveries_per_second": sum(p["deliveries"] for p in recent) / RATE_SECONDS,
        "total_messages": stats.total_messages,
        "series": series,
        "layer": type(Channels.layer).__name__,
        "process": os.getpid(),
    }
