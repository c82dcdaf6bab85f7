"""Rights that follow the user, not the moment of connecting.

A WebSocket is authorized once, at its handshake; without more, a socket opened
before a logout, a password change, a deactivation or a lost permission keeps what
it had. Here:

- every `AetherConsumer` connection joins two control groups, one for its user and
  one for its Django session, so that `Channels.disconnect_user()` and
  `Channels.disconnect_session()` reach its sockets on every server (a layer event
  `aether.disconnect` to those groups; `Channels.disconnect(channel)` reaches one);
- a logout closes that session's sockets at once (`apps.py` connects the signal);
- `RightsWatch` re-reads the user every `rights_check_seconds` and closes the socket
  when the user is gone or inactive, the password changed (Django's session hash no
  longer matches), or the group policy no longer allows a group it is in, which
  also catches changes made by a bulk `update()` that sends no signal;
- `expire()` closes a socket after the optional `max_lifetime_seconds`, so that no
  authorization lasts longer than that, whatever happened in between.

Control groups are named `aether.user.<pk>` and `aether.session.<digest>`; clients
can never join or send to a group starting with `aether.`.
"""

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from .permissions import CONTROL_PREFIX, GroupPolicy, is_authenticated

DISCONNECT = "aether.disconnect"


def user_group(pk: Any) -> str:
    """The control group of every connection of the user with primary key `pk`."""
    return f"{CONTROL_PREFIX}user.{pk}"


def session_group(session_key: str) -> str:
    """The control group of every connection opened with one Django session (the
    key itself never travels: a digest names the group)."""
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:32]
    return f"{CONTROL_PREFIX}session.{digest}"


def is_control_group(group: str) -> bool:
    return group.startswith(CONTROL_PREFIX)


def control_groups(scope: dict[str, Any]) -> list[str]:
    """The control groups a connection with this scope joins."""
    groups = []
    user = scope.get("user")
    if is_authenticated(user):
        groups.append(user_group(user.pk))
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if key:
        groups.append(session_group(key))
    return groups


def disconnect_event(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": DISCONNECT, "code": code, "reason": reason}


class RightsWatch:
    """Re-checks an authenticated connection's rights every `interval` seconds and
    calls `revoke(reason)` once they no longer hold."""

    def __init__(
        self,
        scope: dict[str, Any],
        policy: GroupPolicy,
        groups: Callable[[], Iterable[str]],
        interval: float,
        revoke: Callable[[str], Awaitable[None]],
    ) -> None:
        self.scope = scope
        self.policy = policy
        self.groups = groups
        self.interval = interval
        self.revoke = revoke

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the period is the subject here
            reason = await self.check()
            if reason is not None:
                await self.revoke(reason)
                return

    async def check(self) -> str | None:
        """Why this connection's rights no longer hold, or None."""
        user = self.scope.get("user")
        fresh = await get_user_model()._default_manager.filter(pk=user.pk).afirst()
        if fresh is None or not getattr(fresh, "is_active", True):
            return "the user is gone or inactive"
        session_hash = await _session_hash(self.scope.get("session"))
        if session_hash is not None and not constant_time_compare(
            session_hash, fresh.get_session_auth_hash()
        ):
            return "the password changed"
        for group in self.groups():
            if not self.policy.may_join(fresh, group):
                return f"no longer allowed in {group!r}"
        return None


async def expire(lifetime: float, close: Callable[[], Awaitable[None]]) -> None:
    """Call `close()` once the connection has lived `lifetime` seconds, less a
    random 0-10 % (the spread keeps connections opened together, as after a
    deploy, from reconnecting together)."""
    await asyncio.sleep(lifetime * random.uniform(0.9, 1.0))  # the lifetime itself
    await close()


@database_sync_to_async
def _session_hash(session: Any) -> str | None:
    return session.get(HASH_SESSION_KEY) if session is not None else None
