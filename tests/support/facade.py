"""Helpers shared by the facade tests: a session sender that records what it gets and
can be awaited from any event loop, and bounded receives."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from channels.layers import channel_layers


class Inbox:
    """An async session sender that keeps every text or bytes it is given.

    Senders may run on another event loop (the sync twin's), so waiters are woken
    thread-safely on their own loop.
    """

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.items: list[str | bytes] = []
        self.threads: list[int] = []
        self.fail_with = fail_with
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def __call__(self, item: str | bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.items.append(item)
            self.threads.append(threading.get_ident())
            ready = [w for w in self._waiters if len(self.items) >= w[0]]
            for waiter in ready:
                self._waiters.remove(waiter)
        for _count, future in ready:
            future.get_loop().call_soon_threadsafe(_resolve, future)

    async def wait_for(self, count: int, within: float = 2) -> list[str | bytes]:
        """Wait until `count` items arrived; return them all."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if len(self.items) >= count:
                return list(self.items)
            self._waiters.append((count, future))
        async with asyncio.timeout(within):
            await future
        return list(self.items)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def receive(layer: Any, channel: str, within: float = 2) -> dict[str, Any]:
    """The next message on `channel`, or TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def assert_nothing(layer: Any, channel: str, wait: float = 0.1) -> None:
    """`channel` stays empty for `wait` seconds (a bounded negative check)."""
    try:
        async with asyncio.timeout(wait):
            message = await layer.receive(channel)
    except TimeoutError:
        return
    raise AssertionError(f"{channel!r} unexpectedly got {message!r}")


@contextmanager
def as_default_layer(layer: Any) -> Iterator[Any]:
    """Make `layer` what `get_channel_layer()` returns (consumers use it), then put
    the previous one back."""
    with as_layer("default", layer):
        yield layer


@contextmanager
def as_layer(alias: str, layer: Any) -> Iterator[Any]:
    """Make `layer` what `get_channel_layer(alias)` returns, then put the previous
    one back (or none)."""
    previous = channel_layers.set(alias, layer)
    try:
        yield layer
    finally:
        if previous is None:
            channel_layers.backends.pop(alias, None)
        else:
            channel_layers.set(alias, previous)
