"""Which chat rooms exist, and how recently each was used.

A room exists only once a signed-in user created it (`create_room`, behind the home
page's POST form), within the caps of `settings.DEMO_ROOMS`; a page view or a socket
joining a room's group creates nothing. Lists show rooms by last activity, which a
message records (`touch`) at most once every `activity_seconds` per room and server
process, so a busy room costs one database write per interval, not one per message.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Room
from .rooms import check_room_name, room_of

DEFAULTS = {"per_user": 10, "total": 200, "activity_seconds": 30.0}


def room_limits() -> dict[str, float]:
    """`DEFAULTS` with `settings.DEMO_ROOMS` applied."""
    return {**DEFAULTS, **getattr(settings, "DEMO_ROOMS", {})}


class RoomRefused(Exception):
    """Raised when a room cannot be created; the message says why, for the page."""


def create_room(user: Any, name: str) -> tuple[Room, bool]:
    """The room `name`, created by `user` if it did not exist (then True): refused
    (`RoomRefused`) for an anonymous user, an invalid name, or beyond the caps."""
    if not getattr(user, "is_authenticated", False):
        raise RoomRefused("Sign in to create a room.")
    problem = check_room_name(name)
    if problem is not None:
        raise RoomRefused(problem)
    limits = room_limits()
    with transaction.atomic():
        room = Room.objects.filter(name=name).first()
        if room is not None:
            return room, False
        if Room.objects.filter(created_by=user).count() >= limits["per_user"]:
            raise RoomRefused(
                f"You have created {limits['per_user']:g} rooms, the most one "
                "person may create."
            )
        if Room.objects.count() >= limits["total"]:
            raise RoomRefused(
                f"This site has {limits['total']:g} rooms, its limit: use one of them."
            )
        return Room.objects.create(name=name, created_by=user), True


class ActivityClock:
    """Says when a room's activity is due to be written again: at most once every
    `every` seconds per room; remembers the last `size` rooms."""

    def __init__(
        self,
        every: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        size: int = 10_000,
    ) -> None:
        self.every = every
        self.clock = clock
        self.size = size
        self._written: OrderedDict[str, float] = OrderedDict()

    def due(self, room: str) -> bool:
        now = self.clock()
        last = self._written.get(room)
        if last is not None and now - last < self.every():
            return False
        self._written[room] = now
        self._written.move_to_end(room)
        if len(self._written) > self.size:
            self._written.popitem(last=False)
        return True


activity = ActivityClock(lambda: room_limits()["activity_seconds"])


async def touch(group: str | None) -> None:
    """A message went to `group`: if it is a room's, record the activity (when due).
    Rooms nobody created have no row, and get none."""
    name = room_of(group)
    if name is not None and activity.due(name):
        await Room.objects.filter(name=name).aupdate(last_activity=timezone.now())
