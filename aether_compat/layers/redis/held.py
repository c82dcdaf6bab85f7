"""A command connection held per (event loop, host), for the layer's batches.

Why: through the pool, every batch pays a pool get and release, a pipeline or
command object, and, because the clients set `socket_timeout`, redis-py's
`asyncio.wait_for` around each write, which on Python 3.11 starts a task per
command. A held connection writes the whole batch at once and reads every reply
under one `asyncio.timeout` (the connection's `socket_timeout` is set aside while
it is held, so redis-py adds no timeout of its own).

It serves one batch at a time: a task that finds it busy uses the pool, so
concurrent senders keep their parallelism. A failure, timeout or cancellation
mid-batch leaves the connection's replies out of step, so it is disconnected and
given back to the pool, and the next batch takes a fresh one (from a Sentinel
pool, that is a connection to the current master). Plain (non-Cluster) clients
only: a Cluster client routes each command itself.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class HeldConnection:
    """One connection of a plain client's pool, kept between batches."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._connection: Any = None
        self._timeout: float | None = None  # the held connection's socket_timeout
        self.busy = False
        self.closed = False

    @property
    def free(self) -> bool:
        """Whether a batch may run here now (else it goes through the pool)."""
        return not (self.busy or self.closed)

    async def replies(self, words: Sequence[Sequence[Any]]) -> list[Any]:
        """Send the commands in one write and read their replies, error replies
        in place (as `ResponseError`s). Connection problems and the timeout raise
        redis-py errors. Only call it when `free` (no await in between)."""
        self.busy = True
        try:
            connection = await self._ready()
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.send_packed_command(pack(connection, words))
                    return [await self._reply(connection, w[0]) for w in words]
            except BaseException as exc:
                await asyncio.shield(self._drop(idle_too=_closed(exc)))
                if isinstance(exc, TimeoutError):  # ours, from asyncio.timeout
                    raise RedisTimeoutError(
                        f"no reply within {self._timeout} s on a held connection"
                    ) from None
                raise
        finally:
            self.busy = False
            if self.closed:
                await self.close()

    async def close(self) -> None:
        """Give the connection back (its loop's clients are closing); a batch
        running now gives it back when it ends."""
        self.closed = True
        if not self.busy:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.socket_timeout = self._timeout
                await self._pool.release(connection)

    async def _ready(self) -> Any:
        """The held connection, or a fresh one from the pool if there is none or
        the server closed it (or left data on it) while it was idle."""
        connection = self._connection
        if connection is not None:
            try:
                stale = not connection.is_connected or await connection.can_read()
            except (RedisError, OSError):
                stale = True
            if not stale:
                return connection
            await self._drop(idle_too=True)
        connection = await self._pool.get_connection()
        self._timeout = connection.socket_timeout
        connection.socket_timeout = None  # one asyncio.timeout per batch instead
        self._connection = connection
        return connection

    async def _reply(self, connection: Any, name: Any) -> Any:
        try:  # the client's response callbacks apply, as on the pool path
            return await self._client.parse_response(connection, name)
        except ResponseError as exc:  # a whole reply was read: still in step
            return exc

    async def _drop(self, idle_too: bool = False) -> None:
        """Disconnect the connection and give it back to the pool; `idle_too`:
        disconnect the pool's idle connections as well (the server closed this
        one, so probably those: redis-py's pool does not always see it with RESP3,
        and would hand them out)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.socket_timeout = self._timeout
            try:
                await connection.disconnect(nowait=True)
            finally:
                await self._pool.release(connection)
        if idle_too:
            with contextlib.suppress(RedisError, OSError):
                await self._pool.disconnect(inuse_connections=False)


def pack(connection: Any, words: Sequence[Sequence[Any]]) -> list[bytes]:
    """`connection.pack_commands(words)`, the same bytes, in a third of the time
    for the str, bytes and int words the layer sends (one join, no chunking);
    other values go through the connection's encoder, and a first word with a
    space (which redis-py splits) through redis-py."""
    encoder = connection.encoder
    encoding, errors = encoder.encoding, encoder.encoding_errors
    parts: list[Any] = []
    for command in words:
        first = command[0]
        if (b" " if isinstance(first, bytes) else " ") in first:
            return connection.pack_commands(words)
        parts.append(b"*%d\r\n" % len(command))
        for word in command:
            kind = type(word)
            if kind is str:
                data = word.encode(encoding, errors)
            elif kind is bytes:
                data = word
            elif kind is int:
                data = b"%d" % word
            else:  # floats, memoryviews, and what it refuses (bool, None...)
                data = encoder.encode(word)
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]


def _closed(exc: BaseException) -> bool:
    """Whether `exc` says the connection was closed or reset (not a timeout)."""
    return isinstance(exc, RedisConnectionError | OSError) and not isinstance(
        exc, TimeoutError
    )
