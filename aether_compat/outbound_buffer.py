"""Frames for one WebSocket, written in order without making the caller wait.

Servers that apply backpressure (uvicorn, hypercorn) make `send` wait while the
client's socket is full, and a delivery runs inside someone else's broadcast. A
write that completes without suspending (the common case, and always under daphne)
costs what the `send` call costs; one that suspends is finished by a task of this
connection, and the frames given meanwhile queue behind it, in order. The task ends
once the queue is empty. The caller bounds the queue (`queued_bytes`)."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .session_finish import resume

logger = logging.getLogger("aether_compat.consumers")

Send = Callable[[dict[str, Any]], Awaitable[Any]]
_DONE = object()


class OutboundBuffer:
    """One connection's frames waiting behind a write the server has not finished."""

    __slots__ = (
        "_clock",
        "_frames",
        "_on_block",
        "_send",
        "_start_task",
        "_task",
        "blocked_since",
        "queued_bytes",
    )

    def __init__(
        self,
        send: Send,
        start_task: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        on_block: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._start_task = start_task
        self._on_block = on_block
        self._clock = clock
        self._frames: deque[tuple[dict[str, Any], int]] | None = None
        """Made by the first write that waits (most connections never have one)."""
        self._task: asyncio.Task[Any] | None = None
        self.queued_bytes = 0
        self.blocked_since: float | None = None
        """When the write now in progress started, while one is blocked."""

    @property
    def busy(self) -> bool:
        """Whether a write is blocked: a new frame would queue behind it."""
        return self._task is not None

    def write(self, message: dict[str, Any], size: int) -> None:
        """Hand `message` to the server now, or queue it behind a blocked write.
        Raises what the server's `send` raises when it fails at once."""
        if self._task is not None:
            if self._frames is None:
                self._frames = deque()
            self._frames.append((message, size))
            self.queued_bytes += size
            return
        steps = self._send(message).__await__()
        step = next(steps, _DONE)
        if step is _DONE:
            return
        self.blocked_since = self._clock()
        self._task = self._start_task(self._drain(resume(steps, step)))
        self._on_block()

    async def drained(self) -> None:
        """Wait until every frame given so far has been handed to the server."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _drain(self, blocked: Awaitable[Any]) -> None:
        try:
            await blocked
            while self._frames:
                message, size = self._frames.popleft()
                self.queued_bytes -= size
                self.blocked_since = self._clock()
                await self._send(message)
        except Exception as exc:  # the connection is ending; its frames go with it
            queued = len(self._frames) if self._frames else 0
            logger.debug("dropped %d queued frames: %r", queued + 1, exc)
        finally:
            self._frames = None
            self.queued_bytes = 0
            self.blocked_since = None
            self._task = None
