"""Our layers at two commits, side by side in one run: did a change cost the fast
paths? Also the latency of a confirmed broadcast beside an unconfirmed one.

    python bench/compare_commits.py OLD_REV [--new REV] [--repeats 3] [--seconds 0.5]

The package at OLD_REV is extracted as `aether_compat_old` (its imports are all
relative) and imported next to the working tree's `aether_compat` (or the one at
`--new`, extracted as `aether_compat_new`); every metric is
measured for old and new in alternating order, `--repeats` times, and the table
shows medians and the new/old ratio. Redis runs on a private redis-server.
"""

import argparse
import asyncio
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Arrivals, park, round_trips, stop, timed_rounds  # noqa: E402
from testing_support.redis_process import RedisProcess  # noqa: E402

MESSAGE = {"type": "aether.message", "text": "Hello, everyone in the room!"}
MEMBERS = 1000
GROUP = "bench-room"
Metric = Callable[[Any, float], Awaitable[float]]


def load_rev(rev: str, into: Path, name: str) -> Any:
    """`aether_compat` as it was at `rev`, importable as `name`."""
    archive = subprocess.run(
        ["git", "archive", rev, "aether_compat"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "aether_compat").rename(into / name)
    sys.path.insert(0, str(into))
    return importlib.import_module(f"{name}.layers")


async def round_trip(layer: Any, seconds: float) -> float:
    """Send then receive on one channel, in one task: round trips per second."""
    return await round_trips(layer, await layer.new_channel(), MESSAGE, seconds)


async def fan_out(layer: Any, seconds: float) -> float:
    """group_send to MEMBERS parked receivers: deliveries per second."""
    arrivals = Arrivals()
    names = [await layer.new_channel() for _ in range(MEMBERS)]
    tasks = await park([partial(layer.receive, name) for name in names], arrivals)
    for name in names:
        await layer.group_add(GROUP, name)
    broadcast = partial(layer.group_send, GROUP, MESSAGE)
    rate, _ = await timed_rounds(broadcast, arrivals, MEMBERS, seconds, 30)
    await stop(tasks)
    return rate


async def session_fan_out(layer: Any, seconds: float) -> float:
    """group_send to MEMBERS registered sessions (how AetherConsumer receives)."""
    arrivals = Arrivals()

    async def sender(message: dict[str, Any]) -> None:
        arrivals.arrived()

    for _ in range(MEMBERS):
        name = await layer.new_channel()
        await layer.register_session(name, sender)
        await layer.group_add(GROUP, name)
    broadcast = partial(layer.group_send, GROUP, MESSAGE)
    rate, _ = await timed_rounds(broadcast, arrivals, MEMBERS, seconds, 30)
    return rate


async def broadcast_latency(layer: Any, seconds: float, confirm: bool) -> float:
    """Milliseconds one group_send to MEMBERS receivers takes to return (median)."""
    arrivals = Arrivals()
    names = [await layer.new_channel() for _ in range(MEMBERS)]
    tasks = await park([partial(layer.receive, name) for name in names], arrivals)
    for name in names:
        await layer.group_add(GROUP, name)
    took = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(took) < 5:
        arrivals.expect(MEMBERS)
        start = time.perf_counter()
        options = {"confirm": True} if confirm else {}
        await layer.group_send(GROUP, MESSAGE, **options)
        took.append((time.perf_counter() - start) * 1000)
        await arrivals.complete.wait()
    await stop(tasks)
    return statistics.median(took)


async def sample(factory: Callable[[], Any], metric: Metric, seconds: float) -> float:
    layer = factory()
    try:
        return await metric(layer, seconds)
    finally:
        if hasattr(layer, "flush"):
            await layer.flush()
        await layer.close()


def run(rev: str, new_rev: str | None, repeats: int, seconds: float) -> list[str]:
    old = load_rev(rev, Path(tempfile.mkdtemp()), "aether_compat_old")
    if new_rev is None:
        new = importlib.import_module("aether_compat.layers")
    else:
        new = load_rev(new_rev, Path(tempfile.mkdtemp()), "aether_compat_new")
    rows = []
    server = RedisProcess().start()
    try:
        url = server.url

        def redis_of(package: Any) -> Callable[[], Any]:
            prefix = f"cmp-{uuid.uuid4().hex[:8]}"
            return partial(package.RedisChannelLayer, hosts=[url], prefix=prefix)

        plans = [
            ("memory round trip /s", "InMemoryChannelLayer", round_trip),
            ("memory fan-out 1,000 deliveries/s", "InMemoryChannelLayer", fan_out),
            (
                "memory sessions 1,000 deliveries/s",
                "InMemoryChannelLayer",
                session_fan_out,
            ),
            ("redis round trip /s", None, round_trip),
            ("redis fan-out 1,000 deliveries/s", None, fan_out),
            ("redis sessions 1,000 deliveries/s", None, session_fan_out),
        ]
        for label, memory_class, metric in plans:
            results: dict[str, list[float]] = {"old": [], "new": []}
            for repeat in range(repeats):
                order = ("old", "new") if repeat % 2 == 0 else ("new", "old")
                for side in order:
                    package = old if side == "old" else new
                    factory = (
                        getattr(package, memory_class)
                        if memory_class
                        else redis_of(package)
                    )
                    results[side].append(asyncio.run(sample(factory, metric, seconds)))
            old_median = statistics.median(results["old"])
            new_median = statistics.median(results["new"])
            rows.append(
                f"| {label} | {old_median:,.0f} | {new_median:,.0f} "
                f"| {new_median / old_median:.2f}x |"
            )
        latency = {}
        current = importlib.import_module("aether_compat.layers")
        for confirm in (False, True):
            metric = partial(broadcast_latency, confirm=confirm)
            runs = [
                asyncio.run(sample(redis_of(current), metric, seconds))
                for _ in range(repeats)
            ]
            latency[confirm] = statistics.median(runs)
    finally:
        server.stop()
    header = [
        f"Old {rev} against {new_rev or 'the working tree'}, medians of {repeats}:",
        "",
        "| metric | old | new | new/old |",
        "|---|---|---|---|",
    ]
    footer = [
        "",
        f"Working tree, Redis group_send to {MEMBERS:,} receivers, time to return "
        "(median ms): "
        f"unconfirmed {latency[False]:.2f}, confirmed {latency[True]:.2f} "
        f"({latency[True] / latency[False]:.1f}x)",
    ]
    return header + rows + footer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the old commit, e.g. HEAD~5")
    parser.add_argument("--new", help="the new commit (default: the working tree)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    print("\n".join(run(args.rev, args.new, args.repeats, args.seconds)))


if __name__ == "__main__":
    main()
