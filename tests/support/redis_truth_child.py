"""A child process for tests/test_redis_truth.py. It joins group "room" with a
channel of its own, prints that channel's name as one line, then acts out a mode:

- sync-work SECONDS: joined through async_to_sync (a fresh, closed loop per call,
  as a Django sync view does), then blocks in plain sync work; no loop runs at all.
- sigterm-hook: calls leave_on_sigterm(), then receives for ever; SIGTERM ends it.
- graceful: handles SIGTERM as daphne and uvicorn do (the loop stops, the process
  exits normally), so only the layer's exit hook can take its members out.
- echo: capacity 1; prints the "n" of every message it receives, at once.

Usage:
    python -m tests.support.redis_truth_child MODE REDIS_URL PREFIX PRESENCE [SECONDS]
"""

import asyncio
import signal
import sys
import time

from asgiref.sync import async_to_sync

from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis import leave_on_sigterm


def main() -> None:
    mode, url, prefix, presence = sys.argv[1:5]
    layer = RedisChannelLayer(
        hosts=[url],
        prefix=prefix,
        presence_timeout=float(presence),
        capacity=1 if mode == "echo" else 100,
    )
    if mode == "sync-work":
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)("room", channel)
        print(channel, flush=True)
        time.sleep(float(sys.argv[5]))  # the sync work itself: no event loop runs
        return
    if mode == "sigterm-hook":
        leave_on_sigterm()
    asyncio.run(serve(layer, mode))


async def serve(layer: RedisChannelLayer, mode: str) -> None:
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    stop = asyncio.Event()
    if mode == "graceful":
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    receiving = asyncio.create_task(echo(layer, channel, mode == "echo"))
    print(channel, flush=True)
    await stop.wait()
    receiving.cancel()


async def echo(layer: RedisChannelLayer, channel: str, loud: bool) -> None:
    while True:
        message = await layer.receive(channel)
        if loud:
            print(message["n"], flush=True)


if __name__ == "__main__":
    main()
