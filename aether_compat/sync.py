"""`Channels.sync`: the facade for code that is not async (Django views, management
commands, Celery tasks, plain threads), with the same names and results.

Each call runs the async form through asgiref's `async_to_sync`: from a thread that an
ASGI server started (a sync view under daphne) it runs on the server's event loop, so
registered sessions are called where their sockets live; from a plain thread it runs
on a short-lived loop of its own.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import async_to_sync

from .history import History
from .limits import CLOSE_REVOKED
from .messages import ChannelMessage
from .presence import Presence, PresenceStats
from .results import SendResult

if TYPE_CHECKING:
    from .deferred import Deferred
    from .facade import ChannelsFacade, Group, TextSender

T = TypeVar("T")


class SyncChannels:
    """`Channels` without `await`; inside a running event loop it refuses to block."""

    __slots__ = ("_facade",)

    def __init__(self, facade: "ChannelsFacade") -> None:
        self._facade = facade

    def group(self, name: str) -> "SyncGroup":
        """The group `name`, with blocking broadcasts."""
        return SyncGroup(self._facade.group(name))

    def group_add(
        self, group: str, session_id: str, meta: dict[str, Any] | None = None
    ) -> None:
        """Blocking `Channels.group_add`."""
        _run("group_add", self._facade.group_add, group, session_id, meta)

    def group_discard(self, group: str, session_id: str) -> None:
        """Blocking `Channels.group_discard`."""
        _run("group_discard", self._facade.group_discard, group, session_id)

    def group_members(self, group: str) -> set[str]:
        """Blocking `Channels.group_members`."""
        return _run("group_members", self._facade.group_members, group)

    def send(
        self,
        session_id: str,
        message: str | ChannelMessage,
        *,
        idempotency_key: str | None = None,
        on_commit: bool = False,
        using: str | None = None,
    ) -> "bool | SendResult | Deferred[Any]":
        """Blocking `Channels.send`: `True` when queued or taken by its sender (a
        `SendResult` with `idempotency_key`; a `Deferred` with `on_commit`)."""
        send = functools.partial(
            self._facade.send, session_id, message, idempotency_key=idempotency_key
        )
        if on_commit:
            from .facade import check_send  # the facade imports this module

            check_send(session_id, message, idempotency_key)
            return _defer(send, using)
        return _run("send", send)

    def disconnect(
        self, session_id: str, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> bool:
        """Blocking `Channels.disconnect`."""
        return _run("disconnect", self._facade.disconnect, session_id, code, reason)

    def disconnect_user(
        self, user_pk: Any, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> SendResult:
        """Blocking `Channels.disconnect_user`."""
        return _run(
            "disconnect_user", self._facade.disconnect_user, user_pk, code, reason
        )

    def disconnect_session(
        self, session_key: str, code: int = CLOSE_REVOKED, reason: str = ""
    ) -> SendResult:
        """Blocking `Channels.disconnect_session`."""
        return _run(
            "disconnect_session",
            self._facade.disconnect_session,
            session_key,
            code,
            reason,
        )

    def register_session(self, session_id: str, sender: "TextSender") -> None:
        """Blocking `Channels.register_session`."""
        _run("register_session", self._facade.register_session, session_id, sender)

    def unregister_session(self, session_id: str) -> None:
        """Blocking `Channels.unregister_session`."""
        _run("unregister_session", self._facade.unregister_session, session_id)


class SyncGroup:
    """`Channels.sync.group(name)`: a group's broadcasts without `await`."""

    __slots__ = ("_group",)

    def __init__(self, group: "Group") -> None:
        self._group = group

    @property
    def name(self) -> str:
        return self._group.name

    def broadcast(
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
        """Blocking `Group.broadcast`; with `on_commit` it returns a `Deferred` at
        once, registered with the transaction of this thread."""
        options = {"idempotency_key": idempotency_key}
        return self._blocking(
            "broadcast", message, sender, confirm, exclude, options, on_commit, using
        )

    def broadcast_binary(
        self,
        data: bytes,
        sender: str | None = None,
        *,
        confirm: bool | float = False,
        exclude: Iterable[str] = (),
        idempotency_key: str | None = None,
        on_commit: bool = False,
        using: str | None = None,
    ) -> "SendResult | Deferred[SendResult]":
        """Blocking `Group.broadcast_binary`; `on_commit` as for `broadcast`."""
        options = {"idempotency_key": idempotency_key}
        return self._blocking(
            "broadcast_binary",
            data,
            sender,
            confirm,
            exclude,
            options,
            on_commit,
            using,
        )

    def history(self, since: Any = None, limit: int | None = None) -> History:
        """Blocking `Group.history`."""
        return _run("group(...).history", self._group.history, since, limit)

    def presence(self) -> Presence:
        """Blocking `Group.presence`."""
        return _run("group(...).presence", self._group.presence)

    def presence_stats(self) -> PresenceStats:
        """Blocking `Group.presence_stats`."""
        return _run("group(...).presence_stats", self._group.presence_stats)

    def _blocking(
        self,
        name: str,
        body: Any,
        sender: str | None,
        confirm: bool | float,
        exclude: Iterable[str],
        options: dict[str, Any],
        on_commit: bool,
        using: str | None,
    ) -> "SendResult | Deferred[SendResult]":
        group = self._group
        event = group.event(name, body, sender)  # a mistake raises here, not later
        send = group.sender(event, confirm, exclude, options["idempotency_key"])
        if on_commit:
            return _defer(send, using)
        return _run(f"group(...).{name}", send)

    def __repr__(self) -> str:
        return f"SyncGroup({self.name!r})"


def _defer(send: Callable[[], Awaitable[T]], using: str | None) -> "Deferred[T]":
    """Register `send` with this thread's transaction of `using`."""
    from . import metrics
    from .deferred import on_commit

    _refuse_in_loop("group(...).broadcast(..., on_commit=True)")
    metrics.deferred()
    return on_commit(send, using)


def _run(label: str, method: Callable[..., Awaitable[T]], *args: Any) -> T:
    _refuse_in_loop(label)
    return async_to_sync(method)(*args)


def _refuse_in_loop(label: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"Channels.sync.{label}() was called inside a running event loop, where it "
        f"would block that loop; there, write `await Channels.{label}(...)` instead."
    )
