"""The pump: the one task that moves a process's inbox from Redis into its local
buffers, with one blocking pop per message (or one script per batch when a backlog
is waiting), and that survives Redis going away.

Each item it takes is first moved to an in-flight list (`BLMOVE`), and only
removed from there by the next command after it was handed on. A pump cancelled
mid-command (its event loop closed) or cut off from Redis therefore loses nothing:
the next pump puts what is in flight back at the head of the inbox.

A pump whose event loop stopped running (not closed: just not run any more) is
"retired" when a receiver on another loop starts a new one: the new pump first
kills the old one's connection (`fence`), so a `BLMOVE` still parked there cannot
take the next message, then recovers what it had in flight. Should the old loop
run again, the retired pump ends without delivering or sending anything. (On a
Cluster the pump holds no connection of its own, so there is nothing to fence.)
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .config import BLOCK_SECONDS
from .connections import command, run_batch, script
from .held import pack
from .scripts import PUMP_TAKE, RECOVER
from .util import REDIS_FAILURES, backoff, logger, raise_if_cancelling

BATCH = 100


class Pump:
    """Feeds `deliver` with the items of one inbox until cancelled."""

    def __init__(
        self,
        base: str,
        client: Callable[[], Any],
        deliver: Callable[[list[bytes]], Awaitable[None]],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.inbox = base + "q"
        self.in_flight = base + "f"
        self._client = client
        self._deliver = deliver
        self._on_error = on_error
        self._handed_on: list[bytes] = []
        self._backlog = False
        self._connection: Any = None  # held for the pump's life (plain Redis only)
        self._pool: Any = None
        self.server_id: int | None = None  # the held connection's CLIENT ID
        self.retired = False

    async def run(self) -> None:
        failures = 0
        recovered = False
        while True:
            raise_if_cancelling()
            if self.retired:
                return
            try:
                client = self._client()
                if not recovered:
                    await self._recover(client)
                    recovered = True
                items = await self._next_items(client)
                self._handed_on = items
                failures = 0
            except REDIS_FAILURES as exc:
                raise_if_cancelling()
                await self._drop_connection()
                self._on_error(exc)
                failures += 1
                recovered = False
                await asyncio.sleep(backoff(failures))
                continue
            except BaseException:
                await asyncio.shield(self._drop_connection())
                raise
            if items and not self.retired:  # else the new pump recovers them
                await self._deliver(items)

    async def _recover(self, client: Any) -> None:
        keys = [self.inbox, self.in_flight]
        await run_batch(client, [script(RECOVER, keys, self._handed_on)])
        self._handed_on = []
        self._backlog = True

    async def _next_items(self, client: Any) -> list[bytes]:
        if self._backlog:
            keys = [self.inbox, self.in_flight]
            (items,) = await run_batch(client, [script(PUMP_TAKE, keys, [BATCH])])
            self._backlog = len(items) == BATCH
            return list(items)
        words = [("DEL", self.in_flight)] if self._handed_on else []
        words.append(
            ("BLMOVE", self.inbox, self.in_flight, "LEFT", "RIGHT", BLOCK_SECONDS)
        )
        words.append(("LLEN", self.inbox))
        if hasattr(client, "connection_pool"):
            *_, item, waiting = await self._raw(client, words)
        else:  # a Cluster client routes each command itself
            *_, item, waiting = await run_batch(client, [command(*w) for w in words])
        self._backlog = waiting > 0
        return [] if item is None else [item]

    async def _raw(self, client: Any, words: list[tuple[Any, ...]]) -> list[Any]:
        """The blocking step on a connection the pump keeps: one write, then the
        replies, without a pipeline object or a trip through the pool per message."""
        if self._connection is None:
            self._pool = client.connection_pool
            self._connection = await self._pool.get_connection()
            await self._connection.send_command("CLIENT", "ID")
            self.server_id = await self._connection.read_response()
        connection = self._connection
        if self.retired:
            return [*([None] * (len(words) - 1)), 0]  # nothing taken, no backlog
        await connection.send_packed_command(pack(connection, words))
        replies = []
        for _ in words:
            raise_if_cancelling()  # before a read that may block for BLOCK_SECONDS
            replies.append(await connection.read_response())
        return replies

    async def fence(self, client: Any) -> None:
        """Kill this (retired) pump's connection in Redis, from another loop."""
        if self.server_id is None:
            return
        try:
            await client.execute_command("CLIENT", "KILL", "ID", self.server_id)
        except REDIS_FAILURES as exc:  # it is gone already, or CLIENT is refused
            logger.warning("could not cut the connection of a stopped pump: %r", exc)

    async def abort(self) -> None:
        """Close the held connection, so a read that ignored its cancel ends now."""
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)

    async def _drop_connection(self) -> None:
        """Give the held connection back, closed (its replies may be out of step)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)
            await self._pool.release(connection)
