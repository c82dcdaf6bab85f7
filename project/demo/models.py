"""What the demo remembers across processes: the rooms that exist (who is in them
is the layer's presence, never a database row)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .rooms import ROOM_NAME_MAX_LENGTH, room_group


class Room(models.Model):
    """A chat room a signed-in user created (room_store.create_room); the home
    page and the dashboard list these, most recently active first."""

    name = models.SlugField(max_length=ROOM_NAME_MAX_LENGTH, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_activity = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-last_activity", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def group(self) -> str:
        return room_group(self.name)
