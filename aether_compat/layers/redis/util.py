"""Small helpers every part of the Redis layer uses: its logger, the clock, the
retry pace, the cancellation check, whether another thread's event loop answers,
and which exceptions mean "Redis failed"."""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

# Wall clock, re-exported: deadlines and join times are shared across hosts.
from ...messages import now_ms as now_ms

if TYPE_CHECKING:
    from ...sessions import SessionTable
    from .config import Rules, Seal
    from .connections import Connections
    from .presence import Presence

logger = logging.getLogger("aether_compat.layers.redis")

REDIS_FAILURES = (RedisError, OSError)
"""What a command raises when Redis or the network failed (and only then)."""


def backoff(failures: int) -> float:
    """Seconds to wait before retry number `failures`: doubling from 50 ms up to
    2 s, with jitter so that many processes do not reconnect in step."""
    return min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)


def raise_if_cancelling() -> None:
    """A cancellation that lands just as a reply arrives can be absorbed inside
    redis-py (the command then returns or fails normally); a loop that retries or
    repeats must still stop when its task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def responsive(loop: asyncio.AbstractEventLoop, within: float) -> bool:
    """Whether `loop` (another thread's) runs a callback within `within` seconds."""
    here = asyncio.get_running_loop()
    answered = here.create_future()

    def answer() -> None:  # on `loop`
        with contextlib.suppress(RuntimeError):  # the asking loop closed meanwhile
            here.call_soon_threadsafe(_settle, answered)

    try:
        loop.call_soon_threadsafe(answer)
        async with asyncio.timeout(within):
            await answered
    except (RuntimeError, TimeoutError):  # closed, or stuck
        return False
    return True


def _settle(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class RedisLayerStats:
    """Counters of what went wrong, for logs and dashboards."""

    redis_errors: int = 0
    failed_sends: int = 0
    session_failures: int = 0
    expired_unread: int = 0

    def redis_error(self, exc: BaseException | None, failed_send: bool = False) -> None:
        """Count (and log) one failed command; `failed_send` if a send was lost."""
        self.redis_errors += 1
        if failed_send:
            self.failed_sends += 1
        if exc is not None:
            logger.warning("Redis error in the channel layer: %r", exc)


@dataclass(frozen=True)
class Parts:
    """What the groups and the inbox of one layer instance share."""

    prefix: str
    rules: "Rules"
    connections: "Connections"
    presence: "Presence"
    sessions: "SessionTable"
    seal: "Seal"
    stats: RedisLayerStats
