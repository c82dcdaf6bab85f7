"""Presence on Redis: what group_add + group_discard cost with metadata and with
presence events against a plain membership, and the Redis memory per member.

    python bench/presence_bench.py [--count N] [--url redis://...]

- join/leave: N group_add then N group_discard of distinct channels, one layer
  instance, sequential (latency bound): microseconds per pair, for a group with no
  meta given, with meta, and with `presence_events` (grace 0 and 5 s).
- memory: N members with a ~60-byte meta in a presence-events group: MEMORY USAGE
  of the group's presence keys, per member.
"""

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/presence_bench.py`
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from aether_compat.layers import RedisChannelLayer  # noqa: E402

OPTIONS = {
    "ev:*": {"presence_events": True, "presence_grace": 0},
    "grace:*": {"presence_events": True, "presence_grace": 5},
}
CASES = [("plain", "no meta", False), ("plain", "meta", True)]
CASES += [("ev:1", "events", True), ("grace:1", "events+grace", True)]


def meta_of(i: int) -> dict:
    return {"user": f"user-{i}", "name": f"Person {i}", "connected_at": 1_700_000_000}


async def join_leave(url: str, count: int) -> None:
    for group, label, with_meta in CASES:
        layer = RedisChannelLayer(
            hosts=[url], prefix=f"bench-{uuid.uuid4().hex[:8]}", group_options=OPTIONS
        )
        channels = [await layer.new_channel() for _ in range(count)]
        started = time.perf_counter()
        for i, channel in enumerate(channels):
            await layer.group_add(
                group, channel, meta=meta_of(i) if with_meta else None
            )
        added = time.perf_counter()
        for channel in channels:
            await layer.group_discard(group, channel)
        done = time.perf_counter()
        add_us = (added - started) / count * 1e6
        discard_us = (done - added) / count * 1e6
        print(
            f"{label:14} group_add {add_us:6.0f} us  group_discard {discard_us:6.0f} us"
        )
        await layer.flush()
        await layer.close()


async def memory(url: str, count: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    layer = RedisChannelLayer(hosts=[url], prefix=prefix, group_options=OPTIONS)
    for i in range(count):
        await layer.group_add("ev:m", await layer.new_channel(), meta=meta_of(i))
    client = redis.Redis.from_url(url)
    total = sum(
        client.memory_usage(f"{prefix}:{{g.ev:m}}:{suffix}") or 0
        for suffix in ("pc", "pb", "pk", "pg", "px", "ps")
    )
    print(f"memory: {total} bytes for {count} members: {total / count:.0f} B/member")
    await layer.flush()
    await layer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(join_leave(args.url, args.count))
    asyncio.run(memory(args.url, args.count))


if __name__ == "__main__":
    main()
