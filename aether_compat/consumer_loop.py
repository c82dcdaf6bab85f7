"""The dispatch loop of a session-registered `AetherConsumer`: one task per
connection instead of Channels' `await_many_dispatch`, which keeps a task per
source (the ASGI `receive` and the channel) alive for the connection's life.

On aether_compat layers the channel's events are handed to the connection by the
layer (`SocketDelivery._deliver`), not read from a queue: they wait in an `Inbox`,
whose deque exists only while events wait, and wake the loop with a future. Only
the ASGI `receive()` needs a task, as before, because it is a coroutine of the
server's. Handlers still run one at a time, in the order Channels runs them: a
frame from the client first when both are ready.
"""

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


class Inbox:
    """A connection's layer events not yet dispatched, at most `maxsize`; the
    `put_nowait`/`maxsize` of the `asyncio.Queue` it replaces."""

    __slots__ = ("items", "maxsize", "waiter")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[Message] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, event: Message) -> None:
        items = self.items
        if items is None:
            items = self.items = deque()
        if self.maxsize > 0 and len(items) >= self.maxsize:
            raise asyncio.QueueFull
        items.append(event)
        _release(self.waiter)

    def take(self) -> Message | None:
        items = self.items
        if not items:
            return None
        event = items.popleft()
        if not items:
            self.items = None
        return event


def _release(waiter: asyncio.Future[None] | None, *_: object) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def dispatch_loop(
    receive: Callable[[], Awaitable[Message]],
    inbox: Inbox,
    dispatch: Callable[[Message], Awaitable[None]],
) -> None:
    """Dispatch what `receive()` gives and what the inbox holds until a handler
    raises (`StopConsumer` ends a connection)."""
    loop = asyncio.get_running_loop()
    incoming: asyncio.Future[Message] | None = asyncio.ensure_future(receive())
    try:
        while True:
            if incoming.done():
                message = incoming.result()
                incoming = None
                await dispatch(message)
                incoming = asyncio.ensure_future(receive())
            elif (event := inbox.take()) is not None:
                await dispatch(event)
            else:
                waiter = inbox.waiter = loop.create_future()
                wake = functools.partial(_release, waiter)
                incoming.add_done_callback(wake)
                try:
                    await waiter
                finally:
                    inbox.waiter = None
                    incoming.remove_done_callback(wake)
    finally:
        if incoming is not None and not incoming.done():
            incoming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await incoming
