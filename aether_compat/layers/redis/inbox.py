"""The inbox of one Redis layer instance and the tasks that keep it flowing: the
pump (Redis -> local buffers), the sweeper (expiry) and the ack flusher (capacity
counts back in Redis). Presence has a thread of its own (beat.py).

The tasks run on the event loop that first needed them, and follow the receivers:
if that loop closes, stops running, or is stuck (it answers no callback for a
second) while a receiver waits on another loop, that receiver starts them again on
its own loop (see pump.py for how the old pump is fenced off).
"""

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from typing import Any

from .connections import Command, script
from .groups import Groups
from .handoff import Handoff
from .local import Item, LocalChannels, message_of
from .pump import Pump
from .scripts import ACK
from .util import (
    REDIS_FAILURES,
    Parts,
    backoff,
    now_ms,
    raise_if_cancelling,
    responsive,
)

_JOBS = ("pump", "sweeper")
RECHECK_SECONDS = 1.0  # how often a receiver looks whether the pump's loop still runs


class Inbox:
    """Background work for this instance's own channels."""

    def __init__(self, parts: Parts, groups: Groups) -> None:
        self.box = parts.presence.box
        self.base = parts.presence.base
        self.local = LocalChannels()
        self.stats = parts.stats
        self._connections = parts.connections
        self._groups = groups
        self._sessions = parts.sessions
        self._seal = parts.seal
        self._idle_ms = parts.rules.expiry_ms  # a reader this silent has stopped
        self._handoff = self.handoff = Handoff(parts, self.local, self.own)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._spare: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        # the loop the pump and sweeper run on, checked (receive() reads it too)
        self.running_on: asyncio.AbstractEventLoop | None = None
        self._pump_object: Pump | None = None
        self._stuck: asyncio.AbstractEventLoop | None = None  # runs, answers nothing
        self._owed: dict[str, int] = {}  # token -> acks sent ahead of the take

    def ensure_running(self) -> bool:
        """Start the pump and the sweeper here unless they run on another loop that
        is running; True if they run on this loop."""
        loop = asyncio.get_running_loop()
        if self.running_on is loop:
            return True
        with self._lock:
            pump = self._tasks.get("pump")
            if _alive(pump) and pump.get_loop() is not loop:
                there = pump.get_loop()
                if there.is_running() and there is not self._stuck:
                    return False
                self._retire(there)  # stopped or stuck: the jobs come here
            for name in _JOBS:
                task = self._tasks.get(name)
                if not _alive(task) or task.get_loop() is not loop:
                    task = loop.create_task(self._job(name), name=f"aether-{name}")
                    task.add_done_callback(self._job_ended)
                    self._tasks[name] = task
            self.running_on, self._stuck = loop, None
            return True

    async def wait(self, channel: str) -> Item | None:
        """Wait for a message of `channel` (or for the pump to stop): the item when
        one is handed over (see `LocalChannels.wait`). While the pump runs on another
        loop, look again now and then whether that loop still runs and answers (a
        loop stuck in blocking code does not)."""
        if self.ensure_running():
            return await self.local.wait(channel)
        try:
            async with asyncio.timeout(RECHECK_SECONDS):
                return await self.local.wait(channel)
        except TimeoutError:
            pump = self._tasks.get("pump")
            there = None if pump is None else pump.get_loop()
            if there is not None and not await responsive(there, RECHECK_SECONDS):
                self._stuck = there
        return None

    def pump_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the pump runs on, while it runs."""
        pump = self._tasks.get("pump")
        return pump.get_loop() if _alive(pump) else None

    def _job(self, name: str) -> Awaitable[None]:
        if name != "pump":
            return self._sweeper()
        retired = self._pump_object  # one that never ended: its loop stopped
        if retired is not None:
            retired.retired = True
        pump = self._pump_object = Pump(
            self.base,
            lambda: self._connections.blocking_client(self.box),
            self._deliver,
            self.stats.redis_error,
        )
        return self._pump(pump, retired)

    def _retire(self, there: asyncio.AbstractEventLoop) -> None:
        """Cancel the jobs of a loop that stopped running (they end when it runs
        again, if ever); its pump is retired and fenced off by the next one."""
        for name in _JOBS:
            task = self._tasks.pop(name, None)
            if task is not None and not task.done() and not there.is_closed():
                there.call_soon_threadsafe(task.cancel)

    def _job_ended(self, task: asyncio.Task[Any]) -> None:
        self.running_on = None  # the next caller checks them all again

    def own(self, coroutine: Awaitable[Any]) -> None:
        """Run a small follow-up task, kept so that `stop` can end it."""
        task = asyncio.ensure_future(coroutine)
        self._spare.add(task)
        task.add_done_callback(self._spare.discard)

    async def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel and await the tasks running on `loop` (the current one)."""
        mine = [
            t for t in [*self._tasks.values(), *self._spare] if t.get_loop() is loop
        ]
        for task in mine:
            task.cancel()
        _, pending = await asyncio.wait(mine, timeout=0.2) if mine else ((), ())
        if pending and self._pump_object is not None:
            # redis-py may swallow the cancel and read on until BLMOVE times out
            await self._pump_object.abort()
        await asyncio.gather(*mine, return_exceptions=True)

    def stop_elsewhere(self) -> None:
        for task in list(self._tasks.values()):
            if not task.get_loop().is_closed():
                task.get_loop().call_soon_threadsafe(task.cancel)

    # Acks: counts of received or expired messages, taken back in Redis

    async def take(
        self, channel: str, token: str, capacity: int, item: Item | None = None
    ) -> dict[str, Any]:
        """The next message of one of this instance's channels, waiting as long
        as it takes; what it takes or drops is acked back to Redis. `item`: one
        handed to this reader already, not taken yet (the layer's `receive()` parks
        and takes by itself in the usual case, and calls this for the rest)."""
        local = self.local
        while True:
            if item is None and local._buffers.get(channel):  # as `has_messages`
                if local.may_look_full(channel, token, capacity):
                    await self.ack_ahead(token)
                item = local.take_item(channel, now_ms())
                self.flush_acks_soon()  # it took, or dropped expired ones
                if item is not None:
                    return message_of(item)
            if item is None:
                loop = asyncio.get_running_loop()
                if self.running_on is loop:
                    waiter = local.park(channel, loop)
                    try:
                        item = await waiter
                    except asyncio.CancelledError:
                        local.unpark(channel, waiter)
                        raise
                else:
                    item = await self.wait(channel)
                if item is None:
                    continue  # look in the buffer
            if 1 + local.acks.get(token, 0) >= capacity:  # as `may_look_full`
                if item[3] is not None:  # an open item: counted for us until settled
                    local.settle_now(item[3])
                try:
                    await self.ack_ahead(token)
                except asyncio.CancelledError:
                    local.put_back(channel, item)
                    raise
            payload = local.taken(channel, item, now_ms())
            if local.acks:  # an open item's readers ack nothing, but the last
                self.flush_acks_soon()
            if payload is not None:
                return message_of(item)
            item = None

    def drain_acks(self) -> dict[str, int]:
        """The acks to send now, less those already taken back ahead."""
        acks = self.local.drain_acks()
        for token in [t for t in self._owed if acks.get(t, 0) > 0]:
            settled = min(self._owed[token], acks[token])
            self._owed[token] -= settled
            acks[token] -= settled
            if not self._owed[token]:
                del self._owed[token]
            if not acks[token]:
                del acks[token]
        return acks

    async def ack_ahead(self, token: str) -> None:
        """Take back in Redis the count of the message a receive is about to take
        from a channel that may look full (and the acks pending), so whoever hears
        of that message next never finds the channel full. The message is taken
        only after this returns: cancelling it loses nothing."""
        acks = self.drain_acks()
        acks[token] = acks.get(token, 0) + 1
        task = asyncio.ensure_future(self._connections.execute(self._ack_batch(acks)))
        task.add_done_callback(lambda done: self._acked_ahead(done, acks, token))
        with contextlib.suppress(*REDIS_FAILURES):  # then it goes as usual
            await asyncio.shield(task)

    def _acked_ahead(self, task: "asyncio.Future[Any]", acks: dict, token: str) -> None:
        if task.cancelled() or task.exception() is not None:
            acks[token] -= 1
            self.restore_acks({t: n for t, n in acks.items() if n})
            if isinstance(task.exception(), REDIS_FAILURES):
                self.stats.redis_error(task.exception())
        else:  # the take (or expiry) of that message acks it again: owed
            self._owed[token] = self._owed.get(token, 0) + 1

    def clear(self) -> None:
        """Forget buffered messages and acks (flush)."""
        self.local.clear()
        self._owed.clear()

    def restore_acks(self, acks: dict[str, int]) -> None:
        """Put back acks whose command failed; they go with the next flush."""
        for token, count in acks.items():
            self.local.ack(token, count)

    def flush_acks_soon(self) -> None:
        task = self._tasks.get("acks")
        if task is None or task.done():
            loop = asyncio.get_running_loop()
            self._tasks["acks"] = loop.create_task(self._flush_acks())

    async def _flush_acks(self) -> None:
        failures = 0
        while self.local.acks:
            raise_if_cancelling()
            acks = self.drain_acks()
            try:
                await self._connections.execute(self._ack_batch(acks))
                failures = 0
            except REDIS_FAILURES as exc:
                raise_if_cancelling()
                self.restore_acks(acks)
                self.stats.redis_error(exc)
                failures += 1
                await asyncio.sleep(backoff(failures))

    def _ack_batch(self, acks: dict[str, int]) -> list[tuple[str, Command]]:
        if not acks:
            return []
        return [(self.box, script(ACK, [self.base + "n"], [format_acks(acks)]))]

    # The jobs

    async def _pump(self, pump: Pump, retired: Pump | None) -> None:
        try:
            if retired is not None:
                await retired.fence(self._connections.command_client(self.box))
            await pump.run()
        finally:
            if self._pump_object is pump:
                self._pump_object = None
            self.local.wake_all()  # a reader elsewhere restarts the pump

    async def _sweeper(self) -> None:
        """Drop buffered messages at their deadline, freeing their capacity; a channel
        whose reader stopped (see `LocalChannels.sweep`) leaves its groups."""
        while True:
            raise_if_cancelling()
            deadline = self.local.next_deadline()
            wait = 1.0 if deadline is None else (deadline - now_ms() + 1) / 1000
            await asyncio.sleep(min(1.0, max(0.0, wait)))
            for name in self.local.sweep(now_ms(), self._idle_ms):
                self.stats.expired_unread += 1
                await self._groups.leave_all(name)
            if self.local.acks:
                self.flush_acks_soon()

    async def _deliver(self, items: list[bytes]) -> None:
        self._handoff.deliver(items)
        if self.local.acks:
            self.flush_acks_soon()


def _alive(task: "asyncio.Task[Any] | None") -> bool:
    return task is not None and not task.done() and not task.get_loop().is_closed()


def format_acks(acks: dict[str, int]) -> str:
    """Acks as one script argument: "token count token count ..."."""
    return " ".join(f"{token} {count}" for token, count in acks.items() if count)
