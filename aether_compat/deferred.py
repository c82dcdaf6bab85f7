"""Sends deferred to a database commit: `broadcast(..., on_commit=True)` returns a
`Deferred` at once, and the send runs only when the transaction commits.

Why an object and not a `SendResult`: before the commit nothing was sent, and a
zero count would read as "the group was empty". A rolled-back transaction drops
Django's on-commit callbacks without telling anyone, so its `Deferred` stays
pending for ever (`done()` is False, `result(timeout)` raises `TimeoutError`).
"""

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from asgiref.sync import async_to_sync
from django.db import transaction

T = TypeVar("T")


class Deferred(Generic[T]):
    """The outcome of a send that waits for a commit: `done()`, `result(timeout)`
    (blocking) or `await deferred` give the real result once it was sent."""

    __slots__ = ("_future", "using")

    def __init__(self, using: str | None = None) -> None:
        self.using = using
        self._future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def done(self) -> bool:
        """Whether the transaction committed and the send finished."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> T:
        """The send's result; blocks up to `timeout` seconds (TimeoutError after)."""
        return self._future.result(timeout)

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._future).__await__()

    def run(self, send: Callable[[], Awaitable[T]], loop: Any = None) -> None:
        """Run `send` now (the commit happened): on `loop` when the caller was
        async, else on a loop of this thread through `async_to_sync`."""
        if loop is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(_call(send), loop)
            future.add_done_callback(self._settle)
            return
        try:
            self._future.set_result(async_to_sync(send)())
        except Exception as exc:  # the commit is done: the caller reads it here
            self._future.set_exception(exc)

    def _settle(self, future: "concurrent.futures.Future[T]") -> None:
        if future.cancelled():
            self._future.cancel()
        elif (exc := future.exception()) is not None:
            self._future.set_exception(exc)
        else:
            self._future.set_result(future.result())

    def __repr__(self) -> str:
        state = "sent" if self.done() else "waiting for the commit"
        return f"<Deferred ({state}, using={self.using or 'default'!r})>"


async def _call(send: Callable[[], Awaitable[T]]) -> T:
    return await send()


def on_commit(
    send: Callable[[], Awaitable[T]],
    using: str | None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Deferred[T]:
    """Register `send` with `transaction.on_commit` of `using` in this thread
    (outside a transaction it runs at once) and return its `Deferred`."""
    deferred: Deferred[T] = Deferred(using)
    transaction.on_commit(lambda: deferred.run(send, loop), using=using)
    return deferred
