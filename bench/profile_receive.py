"""Profile the receiving side of a Redis fan-out: 1,000 readers of one process
parked in `receive()`, a group_send per round, under cProfile (the sender runs in
the same process; its share is small next to 1,000 deliveries).

    python bench/profile_receive.py [--rounds 200] [--hosts redis://127.0.0.1:6379]
"""

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aether_compat.layers.redis import RedisChannelLayer  # noqa: E402
from bench.harness import parked_group, stop  # noqa: E402

MESSAGE = {"type": "chat.message", "text": "Hello, everyone in the room!", "n": 42}
MEMBERS = 1000


async def run(
    hosts: str, rounds: int, profile: bool, top: int, sort: str = "tottime"
) -> None:
    layer = RedisChannelLayer(hosts=[hosts], prefix=f"prof-{uuid.uuid4().hex[:8]}")
    try:
        arrivals, tasks = await parked_group(layer, "room", MEMBERS)
        profiler = cProfile.Profile()
        cpu = time.process_time()
        if profile:
            profiler.enable()
        for _ in range(rounds):
            arrivals.expect(MEMBERS)
            await layer.group_send("room", MESSAGE)
            await arrivals.complete.wait()
        if profile:
            profiler.disable()
        cpu = time.process_time() - cpu
        print(f"{cpu / rounds / MEMBERS * 1e6:.2f} µs CPU per delivery")
        await stop(tasks)
    finally:
        await layer.flush()
        await layer.close()
    if profile:
        stats = pstats.Stats(profiler).sort_stats(sort)
        stats.print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--hosts", default="redis://127.0.0.1:6379")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key")
    args = parser.parse_args()
    asyncio.run(run(args.hosts, args.rounds, not args.no_profile, args.top, args.sort))


if __name__ == "__main__":
    main()
