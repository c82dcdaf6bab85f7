"""Helpers of tests/test_redis_truth*.py: polling a state with a deadline, child
processes (a script of their own, or a fork of the test process), and a look at
what a private redis-server holds."""

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from pathlib import Path

from tests.support.layers import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


def prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def until(check, within: float, what: str):
    """Await `check()` (returning (done, what it saw)) until done; fail naming
    `what` and the last thing seen after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        done, seen = await check()
        if done:
            return seen
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {within} s (last: {seen!r})")
        await asyncio.sleep(0.02)  # polling a state, with a deadline


async def until_or_not(check, within: float) -> None:
    """`until` as a bound only: whether it happens is not the subject."""
    with contextlib.suppress(AssertionError):
        await until(check, within, "optional")


async def members_are(layer, expected, group="room"):
    found = await layer.group_members(group)
    return found == expected, found


async def paused(admin, count):
    """Whether the private server holds `count` blocked (or paused) clients."""
    now = blocked_clients(admin)
    return now >= count, now


async def receive(layer, channel, within=5.0):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def silent(server, key: str):
    """Whether `key` is gone from the private `server`."""
    with server.client() as client:
        left = client.exists(key)
    return left == 0, left


def blocked_clients(client) -> int:
    return int(client.info("clients")["blocked_clients"])


# Child processes


async def child_process(mode: str, prefix: str, presence: float, seconds=None):
    """Start tests/support/redis_truth_child.py; returns (process, its channel name)."""
    args = [mode, REDIS_URL, prefix, str(presence)]
    if seconds is not None:
        args.append(str(seconds))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.redis_truth_child",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            line = await child.stdout.readline()
    except BaseException:
        await stop_child(child)
        raise
    if not line:
        await stop_child(child)
        raise RuntimeError(f"the child ({mode}) exited before joining")
    return child, line.decode().strip()


async def stop_child(child) -> None:
    if child.returncode is None:
        child.kill()
    await child.wait()


def forked_child(layer, conn) -> None:
    """In a fork of the test process: use the parent's layer object, as a pre-fork
    server's worker would; report identity and what arrives, close on request."""
    asyncio.run(_forked(layer, conn))


async def _forked(layer, conn) -> None:
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    conn.send({"client_id": layer.client_id, "channel": channel, "pid": os.getpid()})
    conn.send(await receive(layer, channel, within=10))
    await asyncio.to_thread(conn.poll, 10)
    await layer.close()


def terminate(child) -> None:
    os.kill(child.pid, signal.SIGTERM)
