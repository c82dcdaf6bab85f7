"""The Aether Channels API (`Channels`, `Group`) over one Django Channels layer.

The facade stores nothing: every call goes to one layer, the one given to
`Channels.configure(layer)` or else Django's `get_channel_layer()`. Broadcasts travel as
the Channels event `{"type": "aether.message", "text" | "bytes": ..., "sender": ...}`,
so any consumer with an `aether_message` handler receives them.

On aether_compat layers every feature is native. On a stock layer (Channels'
`InMemoryChannelLayer`, channels_redis) group names with `:` are translated (see
`names.py`), a broadcast reports only what the layer raises (stock `group_send` returns
`None`), `group_members`, `presence()` and `register_session` raise
`NotImplementedError`, and `group_add` checks presence metadata, then adds the
member without it (stock layers keep no presence).
"""

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import deferred, metrics
from .authority import disconnect_event, session_group, user_group
from .deferred import Deferred
from .errors import MemberUnreachable, SessionSendFailed
from .history import History
from .layers import is_aether_layer
from .layers.idempotency import DEFAULT_WINDOW, check_key
from .limits import CLOSE_REVOKED
from .messages import (
    AETHER_MESSAGE,
    AetherBytesEvent,
    AetherTextEvent,
    ChannelMessage,
    bytes_event,
    text_event,
)
from .names import check_channel_name, check_group_name, stock_group_name
from .presence import Presence, PresenceStats, check_meta
from .results import SendResult
from .sync import SyncChannels

TextSender = Callable[[str | bytes], Awaitable[Any]]
"""A session's sender: called with the text (`str`) or data (`bytes`) of a message."""

logger = logging.getLogger(__name__)

_NO_LAYER = (
    "The Channels facade has no channel layer: settings.CHANNEL_LAYERS has no "
    "'default' entry. Add one, e.g. CHANNEL_LAYERS = {'default': {'BACKEND': "
    "'aether_compat.layers.InMemoryChannelLayer'}}, or call Channels.configure(layer)."
)
# Channels' own ChannelFull, so stock layers' full channels count as expected too.
_EXPECTED_SEND_FAILURES = (ChannelFull, SessionSendFailed, MemberUnreachable)


class ChannelsFacade:
    """The Aether `Channels` singleton: groups, broadcasts with counts, sessions.

    Use the module-level instance `Channels`; `Channels.sync` is the same API for code
    that is not async.
    """

    __slots__ = ("_configured",)

    def __init__(self) -> None:
        self._configured: Any = None

    def configure(self, layer: Any) -> None:
        """Use `layer` from now on; `None` goes back to Django's default layer."""
        if layer is not None and not callable(getattr(layer, "group_send", None)):
            raise TypeError(
                f"Channels.configure() needs a channel layer, got {layer!r}"
            )
        self._configured = layer

    @property
    def layer(self) -> Any:
        """The layer in use: the configured one, else `get_channel_layer()`."""
        if self._configured is not None:
            return self._configured
        layer = get_channel_layer()
        if layer is None:
            raise ImproperlyConfigured(_NO_LAYER)
        return layer

    @property
    def sync(self) -> SyncChannels:
        """The same API for sync code (views, commands, threads), without `await`."""
        return SyncChannels(self)

    def group(self, name: str) -> "Group":
        """The group `name`, to broadcast to; raises `TypeError` for an invalid name."""
        return Group(name, self)

    async def group_add(
        self, group: str, session_id: str, meta: dict[str, Any] | None = None
    ) -> None:
        """Add the channel `session_id` to `group` (idempotent) with its presence
        metadata `meta` (a small dict: docs/presence.md; a new one replaces the
        old). A layer without presence (a stock one) adds it without `meta`."""
        layer = self.layer
        name = _group_on(layer, group)
        channel = check_channel_name(session_id)
        if check_meta(meta) and _takes_meta(layer):
            await layer.group_add(name, channel, meta=meta)
        else:
            await layer.group_add(name, channel)

    async def group_discard(self, group: str, session_id: str) -> None:
        """Remove the channel `session_id` from `group`; absent members are fine."""
        layer = self.layer
        await layer.group_discard(
            _group_on(layer, group), check_channel_name(session_id)
        )

    async def group_members(self, group: str) -> set[str]:
        """The channels in `group` now (presence)."""
        layer = self.layer
        check_group_name(group)
        if not is_aether_layer(layer):
            raise NotImplementedError(
                f"{_class_name(layer)} cannot list group members: the Channels layer "
                "API only adds, discards and sends, it never reads a group back. Use "
                "aether_compat.layers.InMemoryChannelLayer or RedisChannelLayer."
            )
        return set(await layer.group_members(group))

    async def send(
        self,
        session_id: str,
        message: str | ChannelMessage,
        *,
        idempotency_key: str | None = None,
        on_commit: bool = False,
        using: str | None = None,
    ) -> "bool | SendResult | Deferred[Any]":
        """Send to one session; `True` when it was queued on its channel or taken by
        its registered sender, `False` when the channel is full, the sender raised, or
        the session is unreachable. Only invalid input raises (`TypeError`).

        With `idempotency_key` it returns a `SendResult` instead (one sent or one
        failed, or `duplicate=True` when the key was used for this channel within
        the window). With `on_commit=True` it returns a `Deferred` of that result,
        sent once the transaction of database `using` commits."""
        event = check_send(session_id, message, idempotency_key)
        if on_commit:
            return await _defer(
                lambda: self.send(session_id, message, idempotency_key=idempotency_key),
                using,
            )
        if idempotency_key is None:
            error = await self._send_event(session_id, event)
            metrics.send_done(error is None)
            return error is None
        return await self._send_once(session_id, event, idempotency_key)

    async def _send_once(self, session_id: str, event: Any, key: str) -> SendResult:
        layer = self.layer
        _need_aether_layer(layer, "cannot tell a repeated idempotency key")
        try:
            fresh = await layer.claim_once(key, channel=session_id, window=_window())
        except Exception as exc:
            metrics.send_done(False)
            return SendResult(0, 1, (exc,))
        if not fresh:
            metrics.send_done(False, duplicate=True)
            return SendResult(duplicate=True)
        error = await self._send_event(session_id, event)
        metrics.send_done(error is None)
        return SendResult(1) if error is None else SendResult(0, 1, (error,))

    async def disconnect(
        self, session_id: str, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> bool:
        """Close one `AetherConsumer` connection (it leaves its groups first), on
        whichever server it is; `True` when the request reached its channel."""
        event = disconnect_event(code, reason)
        return await self._send_event(session_id, event) is None

    async def disconnect_user(
        self, user_pk: Any, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> SendResult:
        """Close every `AetherConsumer` connection of the user with primary key
        `user_pk`, on every server; the counts say how many were reached."""
        return await self._group_send(
            user_group(user_pk), disconnect_event(code, reason)
        )

    async def disconnect_session(
        self, session_key: str, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> SendResult:
        """Close every `AetherConsumer` connection opened with this Django session
        (a logout does this by itself), on every server."""
        return await self._group_send(
            session_group(session_key), disconnect_event(code, reason)
        )

    async def _send_event(
        self, session_id: str, event: dict[str, Any]
    ) -> Exception | None:
        """Send one event; the failure's exception, or None when it was taken."""
        check_channel_name(session_id)
        layer = self.layer
        error: Exception | None = None
        try:
            await layer.send(session_id, event)
        except _EXPECTED_SEND_FAILURES as exc:
            logger.info("Channels.send to %r failed: %s", session_id, exc)
            error = exc
        except Exception as exc:
            logger.warning("Channels.send to %r failed", session_id, exc_info=True)
            error = exc
        return error

    async def register_session(self, session_id: str, sender: TextSender) -> None:
        """Deliver the `aether.message` events of channel `session_id` to `sender`,
        as text or bytes, instead of queueing them."""
        check_channel_name(session_id)
        if not callable(sender):
            raise TypeError(f"a session sender must be an async callable: {sender!r}")
        layer = self.layer
        if not is_aether_layer(layer):
            raise NotImplementedError(
                f"{_class_name(layer)} has no sessions: a stock layer delivers only "
                "through receive(). Handle 'aether.message' events in a consumer "
                "(an aether_message method), or use an aether_compat layer."
            )
        await layer.register_session(session_id, _event_sender(session_id, sender))

    async def unregister_session(self, session_id: str) -> None:
        """Stop delivering to the session's sender; a no-op on stock layers, where
        nothing can be registered."""
        check_channel_name(session_id)
        layer = self.layer
        if is_aether_layer(layer):
            await layer.unregister_session(session_id)

    async def _group_send(
        self,
        group: str,
        event: AetherTextEvent | AetherBytesEvent,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> SendResult:
        started = time.perf_counter()
        result = await self._group_send_now(
            group, event, confirm, exclude, idempotency_key
        )
        metrics.broadcast_done(result, time.perf_counter() - started, exclude)
        return result

    async def _group_send_now(
        self,
        group: str,
        event: AetherTextEvent | AetherBytesEvent,
        confirm: bool | float,
        exclude: Iterable[str],
        idempotency_key: str | None,
    ) -> SendResult:
        layer = self.layer
        name = _group_on(layer, group)
        options: dict[str, Any] = {}
        if confirm is not False:
            _need_aether_layer(layer, "cannot confirm deliveries")
            options["confirm"] = confirm
        if exclude:
            if isinstance(exclude, str):
                raise TypeError(
                    f"exclude takes channel names, not one string: use [{exclude!r}]"
                )
            _need_aether_layer(layer, "cannot leave members out of a broadcast")
            options["exclude"] = tuple(check_channel_name(c) for c in exclude)
        if idempotency_key is not None:
            _need_aether_layer(layer, "cannot tell a repeated idempotency key")
        try:
            if idempotency_key is not None and not await layer.claim_once(
                idempotency_key, group=name, window=_window()
            ):
                return SendResult(duplicate=True)
            result = await layer.group_send(name, event, **options)
        except TypeError:
            raise
        except Exception as exc:
            logger.warning("broadcast to %r failed", group, exc_info=True)
            return SendResult(0, 1, (exc,))
        return result if isinstance(result, SendResult) else SendResult()

    def __repr__(self) -> str:
        source = "configured" if self._configured is not None else "default"
        return f"<Channels ({source} layer)>"


class Group:
    """A group to broadcast to, as `Channels.group(name)` returns it."""

    __slots__ = ("_facade", "name")

    def __init__(self, name: str, facade: ChannelsFacade | None = None) -> None:
        self.name = check_group_name(name)
        self._facade = facade if facade is not None else Channels

    async def broadcast(
        self,
        message: str | ChannelMessage,
        sender: str | None = None,
        *,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
        idempotency_key: str | None = None,
        on_commit: bool = False,
        using: str | None = None,
    ) -> "SendResult | Deferred[SendResult]":
        """Send text (a `ChannelMessage` goes as its JSON) to every member but the
        channels in `exclude` (neither sent nor failed: e.g. the sender's own
        connection). With `confirm` (True, or a deadline in seconds) a member in
        another process counts as sent only once its process said it handed the
        message on. A repeated `idempotency_key` within the window sends nothing
        (`SendResult(duplicate=True)`). `on_commit=True` returns a `Deferred`
        (sent when the transaction of database `using` commits; see deferred.py)."""
        event = self.event("broadcast", message, sender)
        return await self._send(
            event, confirm, exclude, idempotency_key, on_commit, using
        )

    def event(self, kind: str, body: Any, sender: str | None) -> dict[str, Any]:
        """The layer event of a `broadcast` or `broadcast_binary`, checked."""
        if kind == "broadcast":
            return dict(_text_event(body, sender, self.name))
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(
                f"broadcast_binary() takes bytes, got {type(body).__name__}; "
                "use broadcast() for text"
            )
        _check_sender(sender)
        return dict(bytes_event(bytes(body), sender, self.name))

    def sender(
        self,
        event: dict[str, Any],
        confirm: bool | float,
        exclude: Iterable[str],
        idempotency_key: str | None,
    ) -> Callable[[], Awaitable[SendResult]]:
        """The broadcast of `event` with these options, checked, not yet run."""
        if idempotency_key is not None:
            check_key(idempotency_key)
        if isinstance(exclude, str):
            raise TypeError(
                f"exclude takes channel names, not one string: use [{exclude!r}]"
            )
        return functools.partial(
            self._facade._group_send,
            self.name,
            event,  # type: ignore[arg-type]
            confirm,
            tuple(exclude),
            idempotency_key,
        )

    async def _send(
        self,
        event: dict[str, Any],
        confirm: bool | float,
        exclude: Iterable[str],
        idempotency_key: str | None,
        on_commit: bool,
        using: str | None,
    ) -> "SendResult | Deferred[SendResult]":
        send = self.sender(event, confirm, exclude, idempotency_key)
        if on_commit:
            return await _defer(send, using)
        return await send()

    async def broadcast_binary(
        self,
        data: bytes | bytearray | memoryview,
        sender: str | None = None,
        *,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
        idempotency_key: str | None = None,
        on_commit: bool = False,
        using: str | None = None,
    ) -> "SendResult | Deferred[SendResult]":
        """Send bytes to every member; the options as for `broadcast`."""
        event = self.event("broadcast_binary", data, sender)
        return await self._send(
            event, confirm, exclude, idempotency_key, on_commit, using
        )

    async def history(self, since: Any = None, limit: int | None = None) -> History:
        """The group's position and the messages it keeps (docs/history.md): with
        `since` (an (epoch, offset) pair), exactly those after it, or none and
        `recovered=False` when the gap is no longer all there."""
        layer = self._facade.layer
        _need_aether_layer(layer, "keeps no history")
        return await layer.group_history(self.name, since=since, limit=limit)

    async def presence(self) -> Presence:
        """Who is in the group: user key -> the metadata of each of its connections
        (anonymous members under opaque "anon-..." keys; docs/presence.md)."""
        layer = self._facade.layer
        _need_presence(layer)
        return await layer.group_presence(self.name)

    async def presence_stats(self) -> PresenceStats:
        """How many connections the group has, and how many distinct users."""
        layer = self._facade.layer
        _need_presence(layer)
        return await layer.group_presence_stats(self.name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return self.name == other.name and self._facade is other._facade

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


Channels = ChannelsFacade()


def check_send(
    session_id: str, message: Any, idempotency_key: str | None
) -> AetherTextEvent:
    """The event of `Channels.send`, its arguments checked (TypeError)."""
    check_channel_name(session_id)
    if idempotency_key is not None:
        check_key(idempotency_key)
    return _text_event(message, None)


def _window() -> float:
    return float(getattr(settings, "AETHER_IDEMPOTENCY_WINDOW", DEFAULT_WINDOW))


async def _defer(send: Callable[[], Awaitable[Any]], using: str | None) -> Deferred:
    """Register `send` for the commit in Django's thread for this loop's ORM work
    (outside a transaction it runs at once) and count it as deferred."""
    metrics.deferred()
    loop = asyncio.get_running_loop()
    return await sync_to_async(deferred.on_commit)(send, using, loop)


def _group_on(layer: Any, group: str) -> str:
    """`group` as `layer` names it: unchanged where colons are allowed."""
    if _takes_colons(layer):
        return check_group_name(group)
    return stock_group_name(group)


def _takes_colons(layer: Any) -> bool:
    # Looked up on the class: channels_redis' pub/sub layer builds a per-loop layer
    # in __getattr__, and a probe must not do that.
    check = getattr(type(layer), "require_valid_group_name", None)
    if check is None:
        return False
    try:
        check(layer, "aether:probe")
    except TypeError:
        return False
    return True


def _need_aether_layer(layer: Any, what: str) -> None:
    if not is_aether_layer(layer):
        raise NotImplementedError(
            f"{_class_name(layer)} {what}: a stock layer tells nothing of its "
            "deliveries. Use an aether_compat layer."
        )


def _need_presence(layer: Any) -> None:
    if not is_aether_layer(layer):
        raise NotImplementedError(
            f"{_class_name(layer)} keeps no presence: the Channels layer API never "
            "reads a group back. Use aether_compat.layers.InMemoryChannelLayer or "
            "RedisChannelLayer."
        )


@functools.lru_cache(maxsize=64)
def _meta_keyword(function: Any) -> bool:
    try:
        return "meta" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _takes_meta(layer: Any) -> bool:
    """Whether the layer's `group_add` takes presence metadata: ours do (unless an
    instance wraps it without), stock layers' do not."""
    if not is_aether_layer(layer):
        return False
    group_add = layer.group_add
    return _meta_keyword(getattr(group_add, "__func__", group_add))


def _class_name(layer: Any) -> str:
    return f"{type(layer).__module__}.{type(layer).__qualname__}"


def _check_sender(sender: Any) -> None:
    if sender is not None and not isinstance(sender, str):
        raise TypeError(f"sender must be a string or None, got {type(sender).__name__}")


def _text_event(
    message: Any, sender: str | None, group: str | None = None
) -> AetherTextEvent:
    _check_sender(sender)
    if isinstance(message, ChannelMessage):
        return text_event(
            message.to_json(), sender if sender is not None else message.sender, group
        )
    if isinstance(message, str):
        return text_event(message, sender, group)
    raise TypeError(
        f"a message must be str or ChannelMessage, got {type(message).__name__}"
        + ("; use broadcast_binary() for bytes" if isinstance(message, bytes) else "")
    )


def _event_sender(session_id: str, sender: TextSender) -> TextSender:
    """Adapt a text/bytes sender to the layer's sessions, which pass whole events."""

    async def deliver(event: dict[str, Any]) -> None:
        if event.get("type") != AETHER_MESSAGE:
            raise TypeError(
                f"session {session_id!r} was registered through Channels and takes "
                f"only {AETHER_MESSAGE!r} events; got type {event.get('type')!r}"
            )
        if "text" in event:
            outcome = sender(event["text"])
        elif "bytes" in event:
            outcome = sender(event["bytes"])
        else:
            raise TypeError(f"an {AETHER_MESSAGE!r} event needs 'text' or 'bytes'")
        if inspect.isawaitable(outcome):
            await outcome

    return deliver
