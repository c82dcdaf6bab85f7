"""Our RedisChannelLayer against channels_redis' RedisChannelLayer ("core") and
RedisPubSubChannelLayer ("pubsub"), side by side in one run on one Redis, with
redis-py's RPUSH + BLPOP as the floor.

    python bench/redis_bench.py [--quick] [--repeats N] [--redis URL] [--json]

By default it starts a private redis-server on a free loopback port (so the command
counts of INFO commandstats are ours alone); --redis uses another server, with a
fresh key prefix per contestant and nothing flushed but those prefixes. Each repeat
measures every contestant once per metric (round trips in alternating slices, so
the machine's changes of pace hit all contestants alike); the table shows medians.
"commands per" counts every command Redis ran, those inside our Lua scripts
included (each script call is one round trip); "Redis bytes" is MEMORY USAGE of
each contestant's keys.
"""

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/redis_bench.py` from the root
    sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from bench.harness import Arrivals, park, round_trips, stop, timed_rounds  # noqa: E402
from bench.ratios import (  # noqa: E402
    Report,
    Row,
    Samples,
    Target,
    render_table,
    write_json,
)
from bench.redis_bench_parts import (  # noqa: E402
    HISTORY,
    LAYERS,
    MESSAGE,
    close_layer,
    command_counts,
    make_layer,
    parked_channel_bytes,
    two_process_fanout,
)
from testing_support.redis_process import RedisProcess  # noqa: E402

ROUND_TRIP_SLICES = 10
"""Round trips are measured in this many alternating slices per repeat, every
contestant in each, so a change in the machine's pace hits all of them alike."""


async def round_trips_side_by_side(url: str, seconds: float) -> dict[str, float]:
    """Messages per second, one at a time (send, then receive it, then the next),
    for the floor and every layer: `seconds` each in all, in alternating slices
    whose order rotates."""
    layers = {
        kind: make_layer(kind, url, f"bench-{uuid.uuid4().hex[:8]}") for kind in LAYERS
    }
    pusher, popper = aioredis.from_url(url), aioredis.from_url(url)
    key = f"bench-floor-{uuid.uuid4().hex[:8]}"
    payload = b"x" * 60

    async def floor_trips(slice_seconds: float) -> float:
        """The floor: one RPUSH and one BLPOP per message, on two redis-py clients."""
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < slice_seconds:
            await pusher.rpush(key, payload)
            await popper.blpop([key], timeout=5)
            count += 1
        return count / (time.perf_counter() - start)

    try:
        channels = {kind: await layer.new_channel() for kind, layer in layers.items()}
        runs: dict[str, Any] = {
            kind: (lambda t, k=kind: round_trips(layers[k], channels[k], MESSAGE, t))
            for kind in layers
        }
        runs["floor"] = floor_trips
        for run in runs.values():
            await run(0.05)  # warm up: connections, scripts, the pump
        counts = dict.fromkeys(runs, 0.0)
        slice_seconds = seconds / ROUND_TRIP_SLICES
        order = list(runs)
        for turn in range(ROUND_TRIP_SLICES):
            for kind in order[turn % len(order) :] + order[: turn % len(order)]:
                counts[kind] += await runs[kind](slice_seconds) * slice_seconds
        return {kind: count / seconds for kind, count in counts.items()}
    finally:
        await pusher.delete(key)
        await pusher.aclose()
        await popper.aclose()
        for kind, layer in layers.items():
            await close_layer(kind, layer)


async def fanout(
    kind: str, url: str, members: int, seconds: float, variant: str = ""
) -> float:
    """Deliveries per second of group_send to `members` parked receivers of one
    process, whole rounds: every member has its copy before the next broadcast.
    Variants of our layer: "confirm" (each broadcast waits for the receiving
    process to confirm it) and "history" (the group keeps history)."""
    config = {"group_options": {"room": HISTORY}} if variant == "history" else {}
    layer = make_layer(kind, url, f"bench-{uuid.uuid4().hex[:8]}", **config)
    options = {"confirm": True} if variant == "confirm" else {}
    try:
        channels = [await layer.new_channel() for _ in range(members)]
        for channel in channels:
            await layer.group_add("room", channel)
        arrivals = Arrivals()
        receivers = [lambda c=c: layer.receive(c) for c in channels]
        tasks = await park(receivers, arrivals)
        await asyncio.sleep(0.5)  # let receives that do I/O first reach Redis
        rate, _ = await timed_rounds(
            lambda: layer.group_send("room", MESSAGE, **options),
            arrivals,
            members,
            seconds,
            30,
        )
        await stop(tasks)
        return rate
    finally:
        await close_layer(kind, layer)


async def one_repeat(samples: Samples, url: str, quick: bool, server: Any) -> None:
    seconds = 1.0 if quick else 2.0
    for kind, rate in (await round_trips_side_by_side(url, seconds)).items():
        samples.add("round trip", kind, rate)
    for kind in LAYERS:
        for members in (1, 100, 1000):
            rate = await fanout(kind, url, members, seconds)
            samples.add(f"fan-out {members}", kind, rate)
        if kind == "ours":
            for variant in ("confirm", "history"):
                rate = await fanout(kind, url, 1000, seconds, variant)
                samples.add(f"fan-out 1000 {variant}", kind, rate)
        for members in (100, 1000):
            rate, p50, p99 = await asyncio.to_thread(
                two_process_fanout, kind, url, members, seconds, quick
            )
            samples.add(f"2 procs x {members}", kind, rate)
            if members == 1000:
                samples.add("paced p50 ms 2x1000", kind, p50)
                samples.add("paced p99 ms 2x1000", kind, p99)
        if server is not None:
            for op, count in (await command_counts(kind, server)).items():
                samples.add(f"commands per {op}", kind, count)
        redis_bytes, python_bytes = await parked_channel_bytes(kind, url)
        samples.add("Redis bytes per parked channel", kind, redis_bytes)
        samples.add("Python bytes per parked channel", kind, python_bytes)


def rows_of(samples: Samples) -> list[Row]:
    def med(metric: str, kind: str) -> float | None:
        return samples.median(metric, kind)

    def row(metric: str, peer: str, target: Target | None = None, **kw: Any) -> Row:
        name = f"{metric} vs {peer}"
        return Row(name, med(metric, "ours"), med(metric, peer), target=target, **kw)

    rows = [
        row("round trip", "core", Target(">=", 3)),
        Row(
            "round trip vs floor",
            med("round trip", "ours"),
            floor=med("round trip", "floor"),
            target=Target(">=", 0.8),
            against="floor",
        ),
        worst_round_trip(samples),
        row("round trip", "pubsub"),
    ]
    for members in (1, 100, 1000):
        core_target = Target(">=", 8) if members == 1000 else None
        rows.append(row(f"fan-out {members}", "core", core_target))
        pubsub_target = Target(">=", 1) if members == 1000 else None
        rows.append(row(f"fan-out {members}", "pubsub", pubsub_target))
    rows.append(
        Row(
            "fan-out 1000 confirm vs pubsub",
            med("fan-out 1000 confirm", "ours"),
            med("fan-out 1000", "pubsub"),
            target=Target(">=", 0.5),
        )
    )
    rows.append(
        Row(
            "fan-out 1000 history vs none",
            med("fan-out 1000 history", "ours"),
            floor=med("fan-out 1000", "ours"),
            target=Target(">=", 0.75),
            against="floor",
        )
    )
    for members in (100, 1000):
        big = members == 1000
        rows.append(
            row(f"2 procs x {members}", "core", Target(">=", 10) if big else None)
        )
        rows.append(
            row(f"2 procs x {members}", "pubsub", Target(">=", 1) if big else None)
        )
    rows.append(row("paced p50 ms 2x1000", "pubsub"))
    rows.append(row("paced p99 ms 2x1000", "pubsub", Target("<=", 1.5)))
    rows.append(row("paced p99 ms 2x1000", "core"))
    for op in ("send", "receive", "group_send 100"):
        rows.append(row(f"commands per {op}", "core"))
    rows.append(row("Redis bytes per parked channel", "core", Target("<=", 1)))
    rows.append(row("Python bytes per parked channel", "core", Target("<=", 1)))
    return rows


def worst_round_trip(samples: Samples) -> Row:
    """The round trip against the floor in the repeat where it came out lowest:
    the target holds in every repeat, not only in the median."""
    pairs = zip(
        samples.values("round trip", "ours"),
        samples.values("round trip", "floor"),
        strict=True,
    )
    ours, floor = min(pairs, key=lambda pair: pair[0] / pair[1])
    return Row(
        "round trip vs floor, worst repeat",
        ours,
        floor=floor,
        target=Target(">=", 0.8),
        against="floor",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis", help="use this server instead of a private one")
    parser.add_argument("--json", action="store_true", help="write bench/results/")
    args = parser.parse_args()
    server = None if args.redis else RedisProcess().start()
    url = args.redis or server.url
    samples = Samples()
    try:
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats} ...", file=sys.stderr)
            await one_repeat(samples, url, args.quick, server)
    finally:
        if server is not None:
            server.stop()
    rows = rows_of(samples)
    print(render_table(rows, peer="theirs (core/pubsub)"))
    spread = {
        kind: statistics.median(samples.values("round trip", kind))
        for kind in (*LAYERS, "floor")
    }
    print(f"\nround trip medians (msg/s): {spread}")
    if args.json:
        settings = {"quick": args.quick, "repeats": args.repeats, "redis": url}
        report = Report("redis_bench", settings, rows, samples)
        print(write_json(report, ROOT / "bench" / "results"))


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    asyncio.run(main())
