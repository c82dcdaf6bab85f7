"""The demo's three WebSocket endpoints: AetherConsumer subclasses that only name
their groups and add presence, statistics or a live feed."""

import asyncio
import json
import logging
import secrets
from functools import cached_property
from typing import Any

from aether_compat import ChannelMessage
from aether_compat.consumers import AetherConsumer
from aether_compat.permissions import is_authenticated
from aether_compat.protocol import Command
from aether_compat.results import SendResult

from . import presence, room_store
from .dashboard import STAFF_GROUP, snapshot
from .rooms import room_group
from .stats import stats

logger = logging.getLogger(__name__)
DASHBOARD_TICK_SECONDS = 1.0


class CountingConsumer(AetherConsumer):
    """Counts every broadcast its commands make, for the dashboard."""

    async def sent(self, command: Command, result: SendResult) -> None:
        stats.record(result.sent_count, result.failed_count)


class RealtimeConsumer(CountingConsumer):
    """ws/realtime/: the command protocol; logged-in users join `user:<id>`."""

    def get_groups(self) -> list[str]:
        user = self.user
        return [f"user:{user.pk}"] if is_authenticated(user) else []


class ChatConsumer(CountingConsumer):
    """ws/chat/<room>/: joins `room:<room>`, whose presence events (settings) keep
    the page's member list. Joining creates no room (only a signed-in user's POST
    does: room_store)."""

    @property
    def room(self) -> str:
        return self.scope["url_route"]["kwargs"]["room"]

    @property
    def room_group(self) -> str:
        return room_group(self.room)

    def get_groups(self) -> list[str]:
        return [self.room_group]

    def sender_name(self) -> str:
        return super().sender_name() or presence.own_guest_name(self.channel_name)

    def presence_meta(self, group: str) -> dict[str, Any] | None:
        """The default metadata plus the name the member list shows (a guest's
        too), the same name its messages carry."""
        return presence.with_name(super().presence_meta(group), self.sender_name())

    @cached_property
    def connection_id(self) -> str:
        """An opaque, unguessable id of this connection, neither its name (two tabs
        or two guests may share one) nor its channel."""
        return secrets.token_urlsafe(12)

    def sender_id(self) -> str:
        """The `sender` of this connection's chat frames: its `connection_id`, by
        which a page marks its own messages (the message keeps the name)."""
        return self.connection_id

    async def sent(self, command: Command, result: SendResult) -> None:
        """A message in this page's room is its activity (recorded throttled, for
        the room lists)."""
        await super().sent(command, result)
        if command.group == self.room_group:
            await room_store.touch(command.group)

    async def connected(self) -> None:
        await self.push(_hello(self.sender_name(), self.room_group))
        await self.push(_you(self.connection_id, self.room_group))


class DashboardConsumer(AetherConsumer):
    """ws/dashboard/: staff only (the policy guards `dashboard:*`); pushes a
    snapshot of groups and rates every second."""

    groups = [STAFF_GROUP]

    async def connected(self) -> None:
        self.start_task(self._tick())

    async def _tick(self) -> None:
        while True:
            try:
                data = json.dumps(await snapshot(), separators=(",", ":"))
            except Exception as exc:  # e.g. Redis down: try again next tick
                logger.warning("dashboard snapshot failed: %r", exc)
            else:
                frame = ChannelMessage(type="dashboard.stats", payload=data)
                await self.push(frame.to_json())
            await asyncio.sleep(DASHBOARD_TICK_SECONDS)


def _hello(name: str, group: str) -> str:
    """Tells a new chat connection the name its messages will carry."""
    return ChannelMessage(type="chat.welcome", payload=name, target=group).to_json()


def _you(connection: str, group: str) -> str:
    """Tells a new chat connection the id its messages' frames carry as `sender`."""
    return ChannelMessage(
        type="chat.connection", payload=connection, target=group
    ).to_json()
