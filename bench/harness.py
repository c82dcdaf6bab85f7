"""Parked receivers, timed rounds and traced set-ups: the measuring parts every layer
benchmark shares, whatever the layer.

Receivers are tasks parked in `receive()`, as consumers are, and they call it again
after each message, so a round is over only when every member has its copy and waits
for the next one.
"""

import asyncio
import gc
import math
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

Receive = Callable[[], Awaitable[Any]]
Broadcast = Callable[[], Awaitable[Any]]
T = TypeVar("T")


class Arrivals:
    """Counts deliveries and wakes the timer when the round's last member has its
    copy, or when a delivery lands after the round's deadline: the round is then cut
    there, and the members still due stop instead of waiting again."""

    def __init__(self) -> None:
        self.started = 0
        self.count = 0
        self.expected = 0
        self.deadline = math.inf
        self.cut_at: float | None = None
        self.complete = asyncio.Event()

    def expect(self, expected: int, deadline: float = math.inf) -> None:
        self.count = 0
        self.expected = expected
        self.deadline = deadline
        self.complete.clear()

    def arrived(self) -> bool:
        """Count one delivery; False tells the member to stop (the round was cut)."""
        if self.cut_at is not None:
            return False
        self.count += 1
        if self.count == self.expected:
            self.complete.set()
        elif (now := time.perf_counter()) > self.deadline:
            self.cut_at = now
            self.complete.set()
            return False
        return True


async def member(receive: Receive, arrivals: Arrivals) -> None:
    """A consumer's receive loop: take a message, report it, wait for the next."""
    arrivals.started += 1
    while True:
        await receive()
        if not arrivals.arrived():
            return


async def park(receivers: list[Receive], arrivals: Arrivals) -> list[asyncio.Task]:
    """Start one member per receiver; return once every one waits in receive().

    One yield runs every new task up to its first wait. That is a parked receiver
    only for layers whose receive() parks without awaiting anything else first (both
    in-memory layers); a layer that does I/O before parking needs its own check.
    """
    tasks = [asyncio.create_task(member(receive, arrivals)) for receive in receivers]
    await asyncio.sleep(0)
    if arrivals.started != len(tasks):
        raise RuntimeError(f"{arrivals.started} of {len(tasks)} members started")
    return tasks


async def round_trips(layer: Any, channel: str, message: Any, seconds: float) -> float:
    """Send then receive on `channel`, one at a time, for about `seconds`: round
    trips per second."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await layer.send(channel, message)
        await layer.receive(channel)
        count += 1
    return count / (time.perf_counter() - start)


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def timed_rounds(
    broadcast: Broadcast,
    arrivals: Arrivals,
    members: int,
    seconds: float,
    budget: float,
) -> tuple[float, int | None]:
    """Deliveries per second over whole rounds run for about `seconds`, and, when a
    round ran past `budget` seconds, how many members it had reached when it was cut
    (the sample ends there).

    The cut is taken at a member's arrival because a layer that keeps the event loop
    busy would hold up any timer; the outer timeout only guards against a hang.
    """
    gc.collect()
    delivered, start = 0, time.perf_counter()
    deadline = start + seconds
    async with asyncio.timeout(seconds + budget * 10 + 10):
        while True:
            arrivals.expect(members, time.perf_counter() + budget)
            await broadcast()
            await arrivals.complete.wait()
            delivered += arrivals.count
            if arrivals.cut_at is not None:
                return delivered / (arrivals.cut_at - start), arrivals.count
            if (now := time.perf_counter()) >= deadline:
                return delivered / (now - start), None


async def measure_memory(
    setup: Callable[[], Awaitable[T]], traced: bool = True
) -> tuple[T, int | None]:
    """Run `setup`; with `traced`, also return the bytes it left allocated.
    tracemalloc runs only during the set-up, so it never slows a timed part."""
    if not traced:
        return await setup(), None
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        result = await setup()
        gc.collect()
        return result, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def bare_task_bytes(count: int) -> int:
    """What `count` consumer tasks parked on bare futures take: the part of every
    contestant's memory that is not the channel layer's, to subtract."""
    loop = asyncio.get_running_loop()
    setup = partial(park, [loop.create_future] * count, Arrivals())
    tasks, used = await measure_memory(setup)
    await stop(tasks)
    return used or 0


async def parked_group(
    layer: Any, group: str, members: int
) -> tuple[Arrivals, list[asyncio.Task]]:
    """`members` new channels of `layer` in `group`, each with a member parked in
    `receive()`; half a second more, so that a Redis layer's pump is parked too."""
    names = [await layer.new_channel() for _ in range(members)]
    for name in names:
        await layer.group_add(group, name)
    arrivals = Arrivals()
    tasks = await park([partial(layer.receive, name) for name in names], arrivals)
    await asyncio.sleep(0.5)
    return arrivals, tasks
