"""`AetherConsumer`: a WebSocket consumer whose group memberships follow its
connection, which speaks the JSON command protocol (`protocol.py`) under a group
policy (`permissions.py`) and per-connection limits (`limits.py`).

Subclasses override small methods, never the lifecycle: `get_groups()` (joined
before the socket is accepted), `get_policy()`, `get_limits()`, `sender_name()`,
`sender_id()`, `build_message()`, and the hooks `connected()`, `joined()`,
`left()`, `sent()`, `disconnect()`, and `presence_meta()` (the metadata of each
membership: see docs/presence.md); `channel_layer_alias` picks the layer, as in
any Channels consumer. They send their own frames with `push()`, which speaks the
connection's dialect.
"""

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import resume
from .authority import RightsWatch, control_groups, expire
from .consumer_loop import Inbox, dispatch_loop
from .delivery import CLOSED, CONNECTING, OPEN, SocketDelivery
from .errors import CommandRejected
from .facade import Channels, ChannelsFacade
from .heartbeat import Heartbeat
from .limits import (
    CLOSE_FLOOD,
    CLOSE_FRAME_TOO_BIG,
    CLOSE_LIFETIME,
    CLOSE_REVOKED,
    Limits,
    RateLimiter,
    limits_for,
)
from .messages import ChannelMessage
from .outbound import OutboundLimit
from .permissions import GroupPolicy, check_command, get_group_policy, is_authenticated
from .presence import check_meta
from .presence_frames import PresenceFrames
from .protocol import (
    LEGACY,
    Command,
    Dialect,
    chat_message,
    parse_command,
    pick_dialect,
    utf8_size,
)
from .results import SendResult

logger = logging.getLogger(__name__)

_LAYER_FAILURES = (ConnectionError, OSError, TimeoutError)


class AetherConsumer(SocketDelivery):
    """Joins `get_groups()` before it accepts the socket (each checked by the policy
    first; a refusal, or a join that fails, rejects the handshake), runs
    join/leave/send commands, leaves every group it is in on disconnect, and writes
    `aether.message` events to the socket. Its layer is the one named by
    `channel_layer_alias`, as for any Channels consumer.

    On aether_compat layers the connection registers itself as a session, so group
    messages are written straight to the socket by the sender's task, skipping
    Channels' per-message dispatch; other events still reach their handlers.

    A client that offers the subprotocol `aether.v1` gets its frames (see
    docs/protocol.md); any other gets the legacy frames.
    """

    dialect: Dialect = LEGACY
    _heartbeat: Heartbeat | None = None
    resuming: "resume.Resume | None" = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.channels = ChannelsFacade()
        self.channels.configure(self._pick_layer())
        self.channel_layer = self.channels.layer
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        self.in_groups: set[str] = set()
        self._control_groups: list[str] = []
        self.state = CONNECTING
        self.connected_at = int(time.time() * 1000)
        self._presence = PresenceFrames(self.write_text_now)
        channel_receive = await self._attach_channel(send)
        if self._session:
            # One task reads the socket; layer events wake it through the inbox.
            running = dispatch_loop(receive, self._take_inbox(), self.dispatch)
        else:
            running = await_many_dispatch([receive, channel_receive], self.dispatch)
        del channel_receive  # for a session: the replaced queue's `get`
        try:
            await running
        except StopConsumer:
            pass
        finally:
            self.state = CLOSED
            if self._heartbeat is not None:
                self._heartbeat.stop()
            self._cancel_tasks()
            self._presence.close()
            try:
                await self._leave_all()
            finally:
                await self._detach_channel()

    # Methods for subclasses

    def get_groups(self) -> list[str]:
        """Groups to join on connect; the default is the class attribute `groups`."""
        return list(self.groups or ())

    def get_policy(self) -> GroupPolicy:
        return get_group_policy()

    def get_limits(self) -> Limits:
        return limits_for(getattr(settings, "AETHER_WEBSOCKET_LIMITS", None))

    @property
    def user(self) -> Any:
        return self.scope.get("user")

    def sender_name(self) -> str | None:
        """Who this connection is, as receivers of its messages see it."""
        user = self.user
        return user.get_username() if is_authenticated(user) else None

    def sender_id(self) -> str | None:
        """The `sender` of this connection's broadcasts as v1 frames carry it: by
        default `sender_name()`; a consumer may name the connection instead (the
        demo chat gives an opaque id, so pages tell connections apart)."""
        return self.sender_name()

    def build_message(self, command: Command) -> str | ChannelMessage:
        """What a `send` command broadcasts (by default a `chat.message`)."""
        return chat_message(command, self.sender_name())

    def presence_meta(self, group: str) -> dict[str, Any] | None:
        """This connection's presence metadata in `group` (at most
        `MAX_META_BYTES` encoded): by default the user's id and name and when the
        connection opened; an anonymous one has no "user", so it appears under an
        opaque "anon-..." key."""
        user = self.user
        if is_authenticated(user):
            return {
                "user": str(user.pk),
                "name": user.get_username(),
                "connected_at": self.connected_at,
            }
        return {"connected_at": self.connected_at}

    async def connected(self) -> None:
        """Called once the socket is accepted and `get_groups()` joined."""

    async def joined(self, group: str) -> None:
        """Called after this connection joined `group`; for `get_groups()` that is
        before the socket is accepted, so send nothing from here."""

    async def left(self, group: str) -> None:
        """Called after this connection left `group` (also on disconnect)."""

    async def sent(self, command: Command, result: SendResult) -> None:
        """Called after a `send` command was broadcast."""

    # Frames to this connection

    async def push(self, data: str | bytes) -> None:
        """Send `data` to this connection alone, as the application's own frame:
        v1 clients get text as an `aether.message` with `group: null`, legacy
        clients the text itself; bytes go as a binary frame to both."""
        if isinstance(data, str):
            await self.send(text_data=self.dialect.push(data))
        else:
            await self.send(bytes_data=data)

    def frame_text(self, event: dict[str, Any], text: str) -> str:
        """A group message in this connection's dialect."""
        return self.dialect.message(event, text)

    # Lifecycle

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.dialect = pick_dialect(self.scope.get("subprotocols"))
        self.policy = self.get_policy()
        self.limits = self.get_limits()
        self._rate = RateLimiter(
            self.limits.commands_per_second, self.limits.command_burst
        )
        self.outbound = OutboundLimit(
            self._gauge,
            self.limits.outbound_limit_bytes,
            self.limits.outbound_grace_seconds,
        )
        groups = self.get_groups()
        if not all(self.policy.may_join(self.user, group) for group in groups):
            await self.close()
            return
        held = resume.hold_connect_groups(self, groups)
        if not await self._join_on_connect(groups):
            await self.close()
            return
        await self.accept(subprotocol=self.dialect.subprotocol)
        self.state = OPEN
        if held:
            await resume.catch_up_connect_groups(self, held)
        if self.dialect.heartbeats:
            self._start_heartbeat()
        if is_authenticated(self.user):
            self._watch_rights()
        lifetime = self.limits.max_lifetime_seconds
        if lifetime < math.inf:
            self.start_task(expire(lifetime, lambda: self.shut(CLOSE_LIFETIME)))
        await self.connected()

    async def _join_on_connect(self, groups: list[str]) -> bool:
        """Join before the handshake completes, so that whatever is broadcast once the
        client is connected reaches it; on a failure, leave what was joined."""
        try:
            for group in control_groups(self.scope):
                with _layer_errors():
                    await self.channels.group_add(group, self.channel_name)
                self._control_groups.append(group)
            for group in groups:
                await self.join(group)
        except CommandRejected as exc:
            logger.warning(
                "refusing the WebSocket of %s: could not join its groups: %s",
                self.channel_name,
                exc,
            )
            await self._leave_all()
            return False
        return True

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.state = CLOSED
        await self._leave_all()
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    # Commands

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        """Run one command frame and answer it; a bad frame gets an error frame."""
        if self._heartbeat is not None:
            self._heartbeat.heard()
        if self.state != OPEN:
            return
        size = utf8_size(text_data) if text_data is not None else len(bytes_data or b"")
        if size > self.limits.close_frame_bytes:
            await self.shut(CLOSE_FRAME_TOO_BIG)
            return
        verdict = self._rate.take()
        if verdict == "flood":
            await self.shut(CLOSE_FLOOD)
            return
        command: Command | None = None
        try:
            if verdict == "limited":
                raise CommandRejected(
                    "rate_limited",
                    f"at most {self.limits.commands_per_second:g} commands per second",
                )
            command = parse_command(
                text_data,
                bytes_data,
                max_frame_bytes=self.limits.max_frame_bytes,
                strict=self.dialect.strict,
            )
            if command.action == "pong":
                return
            if command.action == "ping":
                reply = self.dialect.pong(command.ref)
            else:
                check_command(self.policy, self.user, command)
                reply = await self.run_command(command)
        except CommandRejected as exc:
            if command is None:
                reply = self.dialect.error(exc, None, exc.ref)
            else:
                reply = self.dialect.error(exc, command.group, command.ref)
        if reply and self.state == OPEN:
            await self.send(text_data=reply)

    async def run_command(self, command: Command) -> str:
        """Carry out an allowed join, leave or send and return the reply frame ("":
        written already, as a resuming join writes it ahead of its replay)."""
        group = command.group
        if group is None:
            raise ValueError(f"run_command() needs a group command, got {command}")
        if command.action == "join":
            return await resume.join(self, group, command.since, command.ref)
        if command.action == "leave":
            await self.leave(group)
            return self.dialect.left(group, command.ref)
        message = self.build_message(command)
        exclude = () if command.echo else (self.channel_name,)
        with _layer_errors():
            result = await self.channels.group(group).broadcast(
                message, sender=self.sender_id(), exclude=exclude
            )
        await self.sent(command, result)
        return self.dialect.sent(group, result, command.ref)

    async def join(self, group: str) -> None:
        """Add this connection to `group` (no policy check: callers check)."""
        if group in self.in_groups:
            return
        if len(self.in_groups) >= self.limits.max_groups:
            raise CommandRejected(
                "too_many_groups",
                f"a connection may be in at most {self.limits.max_groups} groups",
            )
        meta = check_meta(self.presence_meta(group))
        self._presence.expect(group)
        with _layer_errors():
            await self.channels.group_add(group, self.channel_name, meta=meta)
        self.in_groups.add(group)
        await self.joined(group)

    async def leave(self, group: str) -> None:
        """Remove this connection from `group`; leaving a group it is not in is fine."""
        with _layer_errors():
            await self.channels.group_discard(group, self.channel_name)
        self._presence.forget(group)
        if self.resuming is not None:
            self.resuming.forget(group)
        if group in self.in_groups:
            self.in_groups.discard(group)
            await self.left(group)

    async def shut(self, code: int) -> None:
        """Leave every group, then close the socket from the server side: once the
        client sees the close, the layer no longer counts the connection."""
        if self.state == OPEN:
            await self._leave_all()
            await super().shut(code)

    def _take_inbox(self) -> Inbox:
        """Swap the queue `_attach_channel` made for an `Inbox` (no deque while
        empty), keeping whatever already came, so one task dispatches both."""
        queue, inbox = self._inbox, Inbox(self._inbox.maxsize)
        while not queue.empty():
            inbox.put_nowait(queue.get_nowait())
        self._inbox = inbox  # type: ignore[assignment]  # same put_nowait/maxsize
        return inbox

    def _start_heartbeat(self) -> None:
        self._heartbeat = Heartbeat(
            self.limits.heartbeat_interval,
            self.limits.heartbeat_timeout,
            self._send_ping,
            self._shut_soon,
        )
        self._heartbeat.start()

    def _send_ping(self) -> None:
        if self.state == OPEN:
            self.write_text_now(self.dialect.ping())

    def _shut_soon(self, code: int) -> None:
        if self.state == OPEN:
            self.start_task(self.shut(code))

    async def aether_disconnect(self, event: dict[str, Any]) -> None:
        """`Channels.disconnect*()` reached this connection: leave, then close."""
        logger.debug(
            "disconnecting %s: %s", self.channel_name, event.get("reason") or "asked"
        )
        await self.shut(int(event.get("code") or CLOSE_REVOKED))

    async def aether_presence_state(self, event: dict[str, Any]) -> None:
        """A group's presence, handed on join: a frame for v1 clients (legacy
        clients get no presence frames: theirs carry broadcast text only)."""
        if self.dialect.subprotocol is not None and self.state == OPEN:
            self._presence.state(event)

    async def aether_presence_diff(self, event: dict[str, Any]) -> None:
        """Joins and leaves of a group: filtered and coalesced (presence_frames.py)."""
        if self.dialect.subprotocol is not None and self.state == OPEN:
            self._presence.diff(event)

    def _watch_rights(self) -> None:
        async def revoke(reason: str) -> None:
            logger.debug("closing %s: %s", self.channel_name, reason)
            await self.shut(CLOSE_REVOKED)

        watch = RightsWatch(
            self.scope,
            self.policy,
            lambda: sorted(self.in_groups),
            self.limits.rights_check_seconds,
            revoke,
        )
        self.start_task(watch.run())

    async def _leave_all(self) -> None:
        control, self._control_groups = self._control_groups, []
        for group in control:
            try:
                await self.channels.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("could not remove %s from %r", self.channel_name, group)
        for group in sorted(self.in_groups):
            try:
                await self.leave(group)
            except Exception:
                logger.warning(
                    "could not remove %s from %r",
                    self.channel_name,
                    group,
                    exc_info=True,
                )
                self.in_groups.discard(group)

    def _pick_layer(self) -> Any:
        """The layer named by `channel_layer_alias`, as in any Channels consumer; for
        the default alias, the facade's (`Channels.configure()`, else Django's)."""
        alias = self.channel_layer_alias
        if alias == DEFAULT_CHANNEL_LAYER:
            return Channels.layer
        layer = get_channel_layer(alias)
        if layer is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}.channel_layer_alias is {alias!r}, but "
                f"settings.CHANNEL_LAYERS has no {alias!r} entry"
            )
        return layer


@contextmanager
def _layer_errors() -> Iterator[None]:
    """Turn what the layer raises for a group into the error frame it deserves."""
    try:
        yield
    except TypeError as exc:
        raise CommandRejected("invalid_group", str(exc)) from None
    except NotImplementedError as exc:
        raise CommandRejected("unsupported", str(exc)) from None
    except _LAYER_FAILURES as exc:
        raise CommandRejected(
            "unavailable", f"the channel layer failed: {exc}"
        ) from None
