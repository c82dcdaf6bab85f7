"""Connections of a Redis layer: one pair of clients per host and per event loop
(commands; blocking pops), closed with their loop, and batches of commands run on
the hosts their keys belong to, one round trip per host.

`async_to_sync` runs every call on a fresh event loop and closes it; redis-py
connections belong to the loop that opened them, so each loop gets its own clients,
and `loop.close()` is wrapped to close them (and stop the layer's tasks on that loop)
before the loop goes away.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from .redis_commands import Command, run_batch
from .redis_hosts import Client, Host, place

Tagged = Sequence[tuple[str, Command]]
LoopHook = Callable[[asyncio.AbstractEventLoop], Awaitable[None]]


class Connections:
    """Clients per (event loop, host), and where each hash tag lives."""

    def __init__(self, hosts: list[Host], before_loop_close: LoopHook) -> None:
        self.hosts = hosts
        self.one_server = len(hosts) == 1 and hosts[0].kind != "cluster"
        self._before_loop_close = before_loop_close
        self._loops: dict[asyncio.AbstractEventLoop, list[tuple[Client, Client]]] = {}
        self._lock = threading.Lock()

    def shard(self, tag: str) -> int:
        return place(tag, self.hosts)

    def command_client(self, tag: str) -> Client:
        return self._for_loop()[self.shard(tag)][0]

    def blocking_client(self, tag: str) -> Client:
        return self._for_loop()[self.shard(tag)][1]

    def host_of(self, tag: str) -> str:
        return self.hosts[self.shard(tag)].identity

    async def execute(self, tagged: Tagged) -> list[Any]:
        """Run the commands, grouped by host (one pipeline each); results in order.
        The first failing host raises."""
        results = await self.execute_partial(tagged)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def execute_partial(self, tagged: Tagged) -> list[Any]:
        """Like `execute`, but a host that fails puts its exception in place of the
        results of its commands, and the other hosts' results are kept."""
        clients = self._for_loop()
        if len(clients) == 1:
            try:
                return await run_batch(clients[0][0], [cmd for _, cmd in tagged])
            except (OSError, Exception) as exc:
                return [exc] * len(tagged)
        by_host: dict[int, list[int]] = {}
        for index, (tag, _) in enumerate(tagged):
            by_host.setdefault(self.shard(tag), []).append(index)
        results: list[Any] = [None] * len(tagged)

        async def run_on(host: int, indexes: list[int]) -> None:
            try:
                done = await run_batch(
                    clients[host][0], [tagged[i][1] for i in indexes]
                )
            except Exception as exc:
                done = [exc] * len(indexes)
            for index, result in zip(indexes, done, strict=True):
                results[index] = result

        await asyncio.gather(*(run_on(h, idx) for h, idx in by_host.items()))
        return results

    def all_command_clients(self) -> list[Client]:
        return [pair[0] for pair in self._for_loop()]

    async def close_current(self) -> None:
        """Close this loop's clients; the next call opens new ones."""
        with self._lock:
            pairs = self._loops.pop(asyncio.get_running_loop(), [])
        await _close(pairs)

    def _for_loop(self) -> list[tuple[Client, Client]]:
        loop = asyncio.get_running_loop()
        pairs = self._loops.get(loop)
        if pairs is None:
            with self._lock:
                pairs = self._loops.get(loop)
                if pairs is None:
                    pairs = [
                        (host.connect(blocking=False), host.connect(blocking=True))
                        for host in self.hosts
                    ]
                    self._loops[loop] = pairs
                    self._close_with(loop)
        return pairs

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        original_close = loop.close

        def close() -> None:
            with self._lock:
                pairs = self._loops.pop(loop, None)
            if pairs is not None and not loop.is_running() and not loop.is_closed():
                loop.run_until_complete(self._before_loop_close(loop))
                loop.run_until_complete(_close(pairs))
            original_close()

        loop.close = close  # type: ignore[method-assign]


async def _close(pairs: list[tuple[Client, Client]]) -> None:
    for pair in pairs:
        for client in pair:
            if isinstance(client, Redis):  # it does not own a pool it was given
                manager = getattr(client.connection_pool, "sentinel_manager", None)
                await client.aclose(close_connection_pool=True)
                for sentinel in manager.sentinels if manager else ():
                    await sentinel.aclose()
            else:
                await client.aclose()
