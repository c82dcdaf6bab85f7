"""Connections of a Redis layer: one pair of clients per host and per event loop
(commands; blocking pops), closed with their loop, and batches of commands and Lua
scripts run on the hosts their keys belong to, one round trip per host.

`async_to_sync` and `asyncio.run` give every call a fresh event loop and close it;
redis-py connections belong to the loop that opened them, so each loop gets its own
clients. They are closed by the loop's own shutdown: an async generator started on
the loop is finalised by `shutdown_asyncgens()` (which both call before closing),
and its `finally` closes the clients and stops the layer's tasks there. Batches run on
a command connection each (loop, host) holds (held.py), or the pool when it is busy.
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .config import Client, Host, place
from .held import HeldConnection
from .keys import group_scan_pattern
from .scripts import Script
from .util import REDIS_FAILURES

Command = tuple[Any, ...]
"""`(Script, keys, args)` for a script, or `(None, "COMMAND", arg, ...)`."""
Tagged = Sequence[tuple[str, Command]]
"""Commands with the hash tag of the key they touch, which names their host."""
LoopHook = Callable[[asyncio.AbstractEventLoop], Awaitable[None]]
Pairs = list[tuple[Client, Client]]
Helds = list[HeldConnection | None]


def script(lua: Script, keys: list[str], args: list[Any]) -> Command:
    return (lua, keys, args)


def command(*words: Any) -> Command:
    return (None, *words)


class Connections:
    """Clients per (event loop, host), and where each hash tag lives."""

    def __init__(
        self, hosts: list[Host], before_loop_close: LoopHook, name: str | None = None
    ) -> None:
        self.hosts = hosts
        self.name = name
        self.one_server = len(hosts) == 1 and hosts[0].kind != "cluster"
        self._before_loop_close = before_loop_close
        self._loops: dict[asyncio.AbstractEventLoop, tuple[Pairs, Helds, Any]] = {}
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
        clients, helds, _ = self._entry()
        by_host = group_by_host(tagged, len(clients), self.shard)
        results: list[Any] = [None] * len(tagged)

        async def run_on(host: int, indexes: list[int]) -> None:
            commands = [tagged[i][1] for i in indexes]
            held = helds[host]
            try:
                if held is not None and held.free:  # else another task is on it
                    replies = await held.replies([_words(c) for c in commands])
                    done = await _settle(clients[host][0], commands, replies)
                else:
                    done = await run_batch(clients[host][0], commands)
            except REDIS_FAILURES as exc:
                done = [exc] * len(indexes)
            for index, result in zip(indexes, done, strict=True):
                results[index] = result

        if len(by_host) == 1:
            await run_on(*next(iter(by_host.items())))
        else:
            await asyncio.gather(*(run_on(h, idx) for h, idx in by_host.items()))
        return results

    async def delete_matching(self, pattern: str) -> None:
        """UNLINK every key matching `pattern` on every host (SCAN, never KEYS)."""
        for client, _ in self._for_loop():
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await _unlink(client, batch)
                    batch = []
            await _unlink(client, batch)

    async def group_names(self, prefix: str) -> list[str]:
        """The groups whose group key exists on any host (SCAN, never KEYS)."""
        pattern = group_scan_pattern(prefix)
        start = len(prefix) + 4  # "<prefix>:{g."
        names: set[str] = set()
        for client, _ in self._for_loop():
            async for key in client.scan_iter(match=pattern, count=1000):
                text = key.decode() if isinstance(key, bytes) else key
                names.add(text[start:-3])  # drop "}:p"
        return sorted(names)

    async def close_current(self) -> None:
        """Close this loop's clients; the next call opens new ones."""
        with self._lock:
            pairs, helds, _ = self._loops.pop(asyncio.get_running_loop(), ([], [], 0))
        await _close(pairs, helds)

    def _for_loop(self) -> Pairs:
        return self._entry()[0]

    def _entry(self) -> tuple[Pairs, Helds, Any]:
        """This loop's clients, held command connections and closing guard."""
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            with self._lock:
                entry = self._loops.get(loop)
                if entry is None:
                    self._forget_closed_loops()
                    pairs = [
                        (
                            host.connect(blocking=False, name=self.name),
                            host.connect(blocking=True, name=self.name),
                        )
                        for host in self.hosts
                    ]
                    helds = [_held(commands) for commands, _ in pairs]
                    guard = self._guard(loop, pairs, helds)
                    entry = self._loops[loop] = (pairs, helds, guard)
        return entry

    def _guard(
        self, loop: asyncio.AbstractEventLoop, pairs: Pairs, helds: Helds
    ) -> Any:
        """Start an async generator whose end closes `pairs`: the loop finalises it
        in `shutdown_asyncgens()`, while it can still run the clients' close."""

        async def until_loop_shutdown() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                with self._lock:
                    mine = self._loops.get(loop)
                    if mine is not None and mine[0] is pairs:
                        del self._loops[loop]
                await self._before_loop_close(loop)
                await _close(pairs, helds)

        guard = until_loop_shutdown()
        # The first step, taken on this loop, registers the generator with it.
        with contextlib.suppress(StopIteration):
            guard.asend(None).send(None)
        return guard

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops closed without `shutdown_asyncgens()` (a bare
        `loop.close()`); their sockets close when the clients are collected."""
        for loop in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[loop]


def group_by_host(
    tagged: Tagged, hosts: int, shard: Callable[[str], int]
) -> dict[int, list[int]]:
    """host index -> the indexes of the commands it runs (one pipeline each)."""
    by_host: dict[int, list[int]] = {}
    for index, (tag, _) in enumerate(tagged):
        by_host.setdefault(0 if hosts == 1 else shard(tag), []).append(index)
    return by_host


async def run_batch(client: Any, commands: list[Command]) -> list[Any]:
    """Run commands in one round trip (a pipeline without MULTI) and return their
    results; scripts missing from the server (it restarted) are loaded and re-run
    alone, so nothing else in the batch runs twice. The first error raises."""
    if len(commands) == 1:
        return [await _run_one(client, commands[0])]
    pipe = client.pipeline(transaction=False)
    for item in commands:
        pipe.execute_command(*_words(item))
    return await _settle(client, commands, await pipe.execute(raise_on_error=False))


def _words(item: Command) -> tuple[Any, ...]:
    """The command as sent; scripts as EVALSHA (not pipe.evalsha: Cluster
    pipelines refuse that name)."""
    if item[0] is None:
        return item[1:]
    lua, keys, args = item
    return ("EVALSHA", lua.sha, len(keys), *keys, *args)


async def _settle(
    client: Any, commands: list[Command], results: list[Any]
) -> list[Any]:
    """Re-run (alone, after loading) the scripts the server did not have; raise
    the first other error reply."""
    for index, result in enumerate(results):
        if isinstance(result, NoScriptError):
            results[index] = await _load_and_run(client, commands[index])
        elif isinstance(result, Exception):
            raise result
    return results


async def _run_one(client: Any, item: Command) -> Any:
    if item[0] is None:
        return await client.execute_command(*item[1:])
    lua, keys, args = item
    try:
        return await client.evalsha(lua.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await _load_and_run(client, item)


async def _load_and_run(client: Any, item: Command) -> Any:
    lua, keys, args = item
    await client.script_load(lua.source)
    return await client.evalsha(lua.sha, len(keys), *keys, *args)


def _held(client: Client) -> HeldConnection | None:
    """A held command connection for a plain client (a Cluster routes itself)."""
    return HeldConnection(client) if hasattr(client, "connection_pool") else None


async def _unlink(client: Any, keys: list[bytes]) -> None:
    if keys:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("UNLINK", key)
        await pipe.execute()


async def _close(pairs: Pairs, helds: Helds) -> None:
    for held in helds:
        if held is not None:
            await held.close()
    for pair in pairs:
        for client in pair:
            if isinstance(client, Redis):  # it does not own a pool it was given
                manager = getattr(client.connection_pool, "sentinel_manager", None)
                await client.aclose(close_connection_pool=True)
                for sentinel in manager.sentinels if manager else ():
                    await sentinel.aclose()
            else:
                await client.aclose()
