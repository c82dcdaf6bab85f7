"""Waiting until `receive()` is parked, so that a test sends to (or cancels) a
reader that really waits, instead of sleeping and hoping it does.

The layers give no public signal that a reader waits, so this watches what each
one exposes, with a deadline:
- InMemoryChannelLayer: the pending waiter futures of the channel;
- RedisChannelLayer, `new_channel()` names: the pending waiters of the instance's
  local buffers (`LocalChannels`);
- RedisChannelLayer, any other name: the `BLMOVE` on the channel's list that Redis
  runs for each parked reader, seen through MONITOR (from any process or thread).

The first two read private attributes: they live here only, so that a change of
the layers' insides is mended in one place.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from aether_compat.layers import InMemoryChannelLayer, RedisChannelLayer
from aether_compat.layers.redis.keys import box_base, route

POLL_SECONDS = 0.005
Parked = Callable[..., Awaitable[None]]


def pending(futures: list[asyncio.Future[Any]] | None) -> int:
    return sum(1 for future in futures or () if not future.done())


def local_waiters(local: Any, channel: str) -> int:
    """Readers of `channel` parked in a Redis layer's `LocalChannels`."""
    return pending(local._waiters.get(channel))


def waiting_channels(local: Any) -> set[str]:
    """The names a Redis layer's `LocalChannels` keeps waiter lists for."""
    return set(local._waiters)


def visible_waiters(layer: Any, channel: str) -> int:
    """Readers of `channel` parked where this process can see them."""
    if isinstance(layer, InMemoryChannelLayer):
        state = layer._channels.get(channel)
        return pending(state.waiters if state is not None else None)
    if isinstance(layer, RedisChannelLayer) and route(channel).token is not None:
        return local_waiters(layer._inbox.local, channel)
    raise TypeError(f"no visible waiters for {channel!r} on {type(layer).__name__}")


async def until(check: Callable[[], bool], what: str, within: float = 2.0) -> None:
    """Poll `check` until it is true; TimeoutError naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within} s")
        await asyncio.sleep(POLL_SECONDS)  # polling a state, not waiting for one


async def until_parked(
    layer: Any, channel: str, count: int = 1, within: float = 2.0
) -> None:
    """Wait until `count` readers of `channel` are parked (in-memory layer, or a
    Redis layer's own channel names)."""
    await until(
        lambda: visible_waiters(layer, channel) >= count,
        f"{count} parked reader(s) of {channel!r}",
        within,
    )


@contextlib.asynccontextmanager
async def parking(layer: Any, channel: str) -> AsyncIterator[Parked]:
    """Watch `channel` for parked readers on any layer: yields
    `parked(count=1, within=2.0)`, which returns once `count` readers started
    within the block wait. Start the readers inside the block."""
    if not isinstance(layer, RedisChannelLayer) or route(channel).token is not None:

        async def parked_here(count: int = 1, within: float = 2.0) -> None:
            await until_parked(layer, channel, count, within)

        yield parked_here
        return
    async with _blmove_watch(layer, channel) as parked_in_redis:
        yield parked_in_redis


@contextlib.asynccontextmanager
async def _blmove_watch(layer: Any, channel: str) -> AsyncIterator[Parked]:
    """A plain channel's reader parks in `BLMOVE <its list>`: count the connections
    Redis ran that for (one per reader), from MONITOR on the layer's (first, URL)
    host."""
    queue = box_base(layer.prefix, route(channel).box) + "q"
    readers: set[str] = set()
    changed = asyncio.Condition()

    async def watch(monitor: Any) -> None:
        while True:
            seen = await monitor.next_command()
            words = seen["command"].split()
            if words[:2] == ["BLMOVE", queue]:
                async with changed:
                    readers.add(f"{seen['client_address']}:{seen['client_port']}")
                    changed.notify_all()

    async def parked(count: int = 1, within: float = 2.0) -> None:
        try:
            async with asyncio.timeout(within), changed:
                await changed.wait_for(lambda: len(readers) >= count)
        except TimeoutError:
            raise TimeoutError(
                f"{count} reader(s) of {channel!r} not parked in Redis within "
                f"{within} s (saw {len(readers)})"
            ) from None

    client = aioredis.Redis.from_url(layer.hosts[0].options["address"])
    try:
        async with client.monitor() as monitor:
            task = asyncio.ensure_future(watch(monitor))
            try:
                yield parked
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.aclose()
