"""Receiving on plain channels (names without '!'): each has a list of its own in
Redis and no local buffer; a receive pops the oldest unexpired item, or parks on a
blocking `BLMOVE` (which moves nothing: the list onto itself) until one arrives.

A receive cancelled while its pop is on the wire must not lose the message nor let
a later one overtake it: the pop finishes, the message goes back to the head, and
only then may the next pop of that channel in this process run. Pops of one
channel are therefore taken one at a time (a "gate" per list, for any event loop);
the wait for messages is not, so any number of receivers may park.
"""

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .. import codec
from .config import BLOCK_SECONDS, COMMAND_TIMEOUT
from .connections import run_batch, script
from .keys import box_base, decode_item
from .position import split_stamp, with_position
from .scripts import TAKE_PLAIN
from .util import (
    REDIS_FAILURES,
    Parts,
    backoff,
    logger,
    now_ms,
    raise_if_cancelling,
)

Gate = concurrent.futures.Future[None]


class PlainReceiver:
    """`receive()` for plain channels of one layer instance."""

    def __init__(self, parts: Parts, own: Callable[[Awaitable[Any]], None]) -> None:
        self.prefix = parts.prefix
        self._connections = parts.connections
        self._seal = parts.seal
        self._stats = parts.stats
        self._own = own
        self._gates: dict[str, Gate] = {}
        self._lock = threading.Lock()

    async def receive(self, box: str) -> dict[str, Any]:
        queue = box_base(self.prefix, box) + "q"
        failures = 0
        while True:
            raise_if_cancelling()
            try:
                item = await self._take(box, queue)
                if item is not None:
                    return self._message(item)
                client = self._connections.blocking_client(box)
                await client.execute_command(
                    "BLMOVE", queue, queue, "LEFT", "LEFT", BLOCK_SECONDS
                )
                failures = 0
            except REDIS_FAILURES as exc:
                raise_if_cancelling()
                self._stats.redis_error(exc)
                failures += 1
                await asyncio.sleep(backoff(failures))

    def _message(self, item: bytes) -> dict[str, Any]:
        _, tokens, data = decode_item(item)
        payload = self._seal.open(data)
        stamp, _ = split_stamp(tokens)
        if stamp is not None and payload is not None:  # a history group's message
            payload = with_position(payload, stamp.epoch, stamp.offset)
        return codec.decode(payload)

    async def _take(self, box: str, queue: str) -> bytes | None:
        """Pop one message, alone at the gate of `queue`. If the receiver is
        cancelled meanwhile, the message goes back to the head before the gate
        opens for the next pop."""
        gate = await self._enter(queue)
        client = self._connections.command_client(box)
        take = script(TAKE_PLAIN, [queue], [now_ms()])
        task = asyncio.ensure_future(run_batch(client, [take]))
        try:
            (item,) = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._own(self._put_back(client, queue, task, gate))
            raise
        except BaseException:
            self._leave(queue, gate)
            raise
        self._leave(queue, gate)
        return item

    async def _put_back(
        self, client: Any, queue: str, task: "asyncio.Future[Any]", gate: Gate
    ) -> None:
        try:
            (item,) = await task
            if item is not None:
                await client.lpush(queue, item)
        except REDIS_FAILURES as exc:  # Redis lost it (or never popped it)
            self._stats.redis_error(exc)
        finally:
            self._leave(queue, gate)

    async def _enter(self, queue: str) -> Gate:
        """Wait until no other pop of `queue` is under way here; then hold its gate.
        A gate held longer than any pop can take (its loop vanished) is broken."""
        while True:
            with self._lock:
                busy = self._gates.get(queue)
                if busy is None:
                    mine = self._gates[queue] = concurrent.futures.Future()
                    return mine
            try:
                async with asyncio.timeout(3 * COMMAND_TIMEOUT):
                    await asyncio.shield(asyncio.wrap_future(busy))
            except TimeoutError:
                logger.warning("broke a stale receive gate of %s", queue)
                self._leave(queue, busy)

    def _leave(self, queue: str, gate: Gate) -> None:
        with self._lock:
            if self._gates.get(queue) is gate:
                del self._gates[queue]
            if not gate.done():
                gate.set_result(None)
