"""Layers in other processes for the tests: wait on what a child sends through
its pipe, and stop a child and remove its keys afterwards."""

import asyncio
import os
import signal
from typing import Any

from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL


async def pipe_recv(conn: Any, within: float = 10.0) -> Any:
    """The next object the other process sent, waited for without blocking the
    loop; `TimeoutError` when nothing comes within `within` seconds."""
    if not await asyncio.to_thread(conn.poll, within):
        raise TimeoutError(f"nothing from the other process within {within} s")
    return conn.recv()


async def stop_and_clean(process: Any, prefix: str) -> None:
    """Kill the child if it still runs (by its pid) and delete its prefix's keys."""
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    cleanup = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    await cleanup.flush()
    await cleanup.close()
