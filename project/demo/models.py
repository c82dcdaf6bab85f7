"""What the demo remembers across processes: the rooms that exist, and the display
name behind each connected chat session (presence itself comes from the layer)."""

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


class ChatSession(models.Model):
    """Who is behind a chat connection's channel. `group_members()` says which
    channels are present; this table only gives them names, so rows left behind
    by a crashed process are ignored (and pruned) once their channel is gone."""

    channel = models.CharField(max_length=100, primary_key=True)
    group = models.CharField(max_length=100, db_index=True)
    label = models.CharField(max_length=150)
    joined = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.label} in {self.group}"
