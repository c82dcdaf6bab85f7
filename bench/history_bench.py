"""Group history on Redis: what a group with history costs against one without, in
one run on one private Redis, and the memory history takes with 10,000 groups.

    python bench/history_bench.py [--quick] [--repeats N] [--json]

- group_send to 1,000 members (parked `receive()`s, then registered sessions, in
  the sender's process), whole rounds: ms per broadcast with history and without.
  Target: history costs at most 1.3x.
- group_send with no member: what the stored copy and the offset add to the call.
- memory: 10,000 groups, each sent twice its history_size: the bytes of the
  history keys (MEMORY USAGE) and of the server (INFO used_memory), against the
  bound the settings give; then after history_ttl, what is left (epoch + offset).
- storage: the same entries in a capped list (what the layer uses) and in a
  Stream (XADD MAXLEN), per group, and the time of one append script of each.
"""

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/history_bench.py` from the root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from aether_compat.layers import RedisChannelLayer  # noqa: E402
from bench.harness import Arrivals, park, stop, timed_rounds  # noqa: E402
from bench.ratios import Report, Row, Samples, Target, render_table, write_json  # noqa: E402
from bench.redis_bench_parts import MESSAGE  # noqa: E402
from testing_support.redis_process import RedisProcess  # noqa: E402

MEMBERS = 1000
HISTORY = {"history_size": 100, "history_ttl": 300}


def layer_for(url: str, history: bool, **config: Any) -> RedisChannelLayer:
    options = {"room*": dict(HISTORY)} if history else {}
    return RedisChannelLayer(
        hosts=[url],
        prefix=f"hb-{uuid.uuid4().hex[:8]}",
        group_options=options,
        **config,
    )


async def timed(
    layer: RedisChannelLayer, arrivals: Arrivals, seconds: float
) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) per broadcast to MEMBERS, whole rounds.
    The CPU time is the Python side's cost, senders and receivers alike, and
    moves far less than the wall time when other work shares the cores."""
    cpu, wall = time.process_time(), time.perf_counter()
    rate, _ = await timed_rounds(
        lambda: layer.group_send("room", MESSAGE), arrivals, MEMBERS, seconds, 30
    )
    rounds = rate * (time.perf_counter() - wall) / MEMBERS
    return MEMBERS / rate * 1000, (time.process_time() - cpu) / rounds * 1000


async def fanout_queues(url: str, history: bool, seconds: float) -> tuple[float, float]:
    """ms per broadcast to MEMBERS parked receivers, whole rounds."""
    layer = layer_for(url, history)
    try:
        channels = [await layer.new_channel() for _ in range(MEMBERS)]
        for channel in channels:
            await layer.group_add("room", channel)
        arrivals = Arrivals()
        tasks = await park([lambda c=c: layer.receive(c) for c in channels], arrivals)
        await asyncio.sleep(0.5)  # let every receive reach its wait
        timing = await timed(layer, arrivals, seconds)
        await stop(tasks)
        return timing
    finally:
        await layer.flush()
        await layer.close()


async def fanout_sessions(
    url: str, history: bool, seconds: float
) -> tuple[float, float]:
    """ms per broadcast to MEMBERS registered sessions (the consumer case)."""
    layer = layer_for(url, history)
    arrivals = Arrivals()

    async def sender(message: dict) -> None:
        arrivals.arrived()

    try:
        for _ in range(MEMBERS):
            channel = await layer.new_channel()
            await layer.register_session(channel, sender)
            await layer.group_add("room", channel)
        return await timed(layer, arrivals, seconds)
    finally:
        await layer.flush()
        await layer.close()


async def empty_sends(url: str, history: bool, seconds: float) -> float:
    """µs per group_send to a group with no member, one at a time."""
    layer = layer_for(url, history)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await layer.group_send("room", MESSAGE)
            count += 1
        return (time.perf_counter() - start) / count * 1e6
    finally:
        await layer.flush()
        await layer.close()


async def history_memory(
    server: RedisProcess, groups: int, size: int, ttl: float
) -> dict[str, float]:
    """Bytes of history for `groups` groups sent 2 x `size` messages each."""
    options = {"room*": {"history_size": size, "history_ttl": 600}}
    layer = RedisChannelLayer(hosts=[server.url], prefix="mem", group_options=options)
    client = server.client()
    client.flushall()
    before = client.info("memory")["used_memory"]
    try:
        await fill(layer, [f"room:{n}" for n in range(groups)], 2 * size)
        keys = usage(client, "mem:*")
        after = client.info("memory")["used_memory"]
        entry = entry_bytes(client)
        client.flushall()
        # history_ttl: the same groups with a short one, measured once it passed
        options = {"room*": {"history_size": size, "history_ttl": ttl}}
        short = RedisChannelLayer(
            hosts=[server.url], prefix="mem", group_options=options
        )
        await fill(short, [f"room:{n}" for n in range(groups)], 1)
        await short.close()
        await asyncio.sleep(ttl + 1)  # history_ttl is what is measured here
        later = usage(client, "mem:*:h")
        left = usage(client, "mem:*")
        return {
            "history keys bytes per group": keys / groups,
            "used_memory bytes per group": (after - before) / groups,
            "entry bytes (stored message)": entry,
            "after history_ttl: list bytes": later,
            "after history_ttl: bytes per group": left / groups,
        }
    finally:
        client.flushall()
        client.close()
        await layer.close()


async def fill(layer: RedisChannelLayer, names: list[str], rounds: int) -> None:
    for _ in range(rounds):
        for first in range(0, len(names), 500):
            batch = names[first : first + 500]
            await asyncio.gather(*(layer.group_send(g, MESSAGE) for g in batch))


def usage(client: redis.Redis, pattern: str) -> int:
    total = 0
    for key in client.scan_iter(match=pattern, count=1000):
        total += client.memory_usage(key, samples=0) or 0
    return total


def entry_bytes(client: redis.Redis) -> int:
    key = next(client.scan_iter(match="mem:*:h", count=1000))
    return len(client.lindex(key, 0))


LIST_APPEND = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], 300000)
"""
STREAM_APPEND = """
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], 300000)
"""


def storage_choice(server: RedisProcess, groups: int, size: int) -> dict[str, float]:
    """Bytes per group and µs per append for a capped list and a Stream."""
    client = server.client()
    entry = b"12345 1764540000000\n" + b"x" * 80  # offset, time, a small message
    found: dict[str, float] = {}
    kinds = (("list", LIST_APPEND), ("stream", STREAM_APPEND))
    for name, lua in kinds + kinds[::-1]:  # each twice, in both orders: the best
        client.flushall()
        append = client.register_script(lua)
        start = time.perf_counter()
        for group in range(groups):
            pipe = client.pipeline(transaction=False)
            for _ in range(2 * size):
                append(keys=[f"s:{{g.{group}}}:h"], args=[entry, size], client=pipe)
            pipe.execute()
        spent = (time.perf_counter() - start) / (groups * 2 * size) * 1e6
        found[f"{name}: bytes per group"] = usage(client, "s:*") / groups
        best = found.get(f"{name}: µs per append", spent)
        found[f"{name}: µs per append"] = min(best, spent)
    client.flushall()
    client.close()
    return found


async def one_repeat(
    samples: Samples, server: RedisProcess, quick: bool, repeat: int
) -> None:
    """Each metric with history and without, one after the other; which goes
    first alternates between repeats, so a drift of the machine evens out."""
    seconds = 1.0 if quick else 2.0
    order = ((False, "none"), (True, "history"))
    for history, name in order if repeat % 2 else order[::-1]:
        for members, fanout in (
            ("receive()", fanout_queues),
            ("sessions", fanout_sessions),
        ):
            wall, cpu = await fanout(server.url, history, seconds)
            samples.add(f"ms per broadcast, 1,000 {members}", name, wall)
            samples.add(f"CPU ms per broadcast, 1,000 {members}", name, cpu)
        samples.add(
            "µs per group_send, no member",
            name,
            await empty_sends(server.url, history, seconds),
        )


def rows_of(samples: Samples) -> list[Row]:
    rows = []
    for metric in (
        "ms per broadcast, 1,000 receive()",
        "CPU ms per broadcast, 1,000 receive()",
        "ms per broadcast, 1,000 sessions",
        "CPU ms per broadcast, 1,000 sessions",
        "µs per group_send, no member",
    ):
        target = None if "no member" in metric else Target("<=", 1.3)
        rows.append(
            Row(
                f"{metric}: history vs none",
                samples.median(metric, "history"),
                samples.median(metric, "none"),
                target=target,
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="write bench/results/")
    args = parser.parse_args()
    server = RedisProcess().start()
    samples = Samples()
    try:
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats} ...", file=sys.stderr)
            await one_repeat(samples, server, args.quick, repeat)
        groups, size = (1000, 10) if args.quick else (10_000, 20)
        memory = await history_memory(server, groups, size, ttl=3)
        storage = storage_choice(server, 1000 if args.quick else 2000, 100)
    finally:
        server.stop()
    rows = rows_of(samples)
    print(render_table(rows, peer="none"))
    print(f"\nmemory, {groups:,} groups, history_size {size}, 2 x size sent each:")
    for name, value in memory.items():
        print(f"  {name}: {value:,.0f}")
    print("\nstorage, history_size 100 (entries of 100 bytes), 2 x 100 sent:")
    for name, value in storage.items():
        print(f"  {name}: {value:,.1f}")
    if args.json:
        for name, value in {**memory, **storage}.items():
            samples.add(name, "history", value)
        settings = {"quick": args.quick, "repeats": args.repeats}
        report = Report("history_bench", settings, rows, samples)
        print(write_json(report, ROOT / "bench" / "results"))


if __name__ == "__main__":
    asyncio.run(main())
