"""Where the time of a Redis fan-out goes, per delivery: a group_send to 1,000
receivers of one process, parked in `receive()`, split into Redis commands, Lua,
Python decode and Python dispatch (everything else the process does: pump, hand-off,
waking, taking, acks). With OLD_REV, the package at that commit is measured in the
same run, alternating, so the table is a before/after.

    python bench/redis_cost.py [OLD_REV] [--rounds 300] [--repeats 3]

Redis figures come from INFO commandstats of a private redis-server: "Lua" is the
time of the scripts less the commands they ran. Python figures are the process's CPU
time per round (every thread of it), and the decode share is `codec.decode` timed on
the same message. Medians of the repeats. Since a group item's readers share one
decode (shallow copies of a message whose values are all immutable, as this one's
are), the decode row is what a decode per reader would cost: compare the sum of the
two Python rows ("Python total") across commits.
"""

import argparse
import asyncio
import importlib
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.compare_commits import load_rev  # noqa: E402
from bench.harness import parked_group, stop  # noqa: E402
from testing_support.redis_process import RedisProcess  # noqa: E402

MESSAGE = {"type": "chat.message", "text": "Hello, everyone in the room!", "n": 42}
MEMBERS = 1000
PARTS = ("Redis commands", "Lua", "Python decode", "Python dispatch")


async def one_sample(layers: Any, server: Any, rounds: int) -> dict[str, float]:
    """Microseconds per delivery of each part, and the wall time."""
    layer = layers.RedisChannelLayer(
        hosts=[server.url], prefix=f"cost-{uuid.uuid4().hex[:8]}"
    )
    raw = server.client()
    try:
        arrivals, tasks = await parked_group(layer, "room", MEMBERS)
        raw.config_resetstat()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            arrivals.expect(MEMBERS)
            await layer.group_send("room", MESSAGE)
            await arrivals.complete.wait()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stats = raw.info("commandstats")
        await stop(tasks)
    finally:
        raw.close()
        await layer.flush()
        await layer.close()
    deliveries = rounds * MEMBERS
    scripts = sum(v["usec"] for k, v in stats.items() if k.startswith("cmdstat_eval"))
    commands = sum(
        v["usec"]
        for k, v in stats.items()
        if not k.startswith("cmdstat_eval") and "resetstat" not in k
    )
    codec = importlib.import_module(layers.__name__ + ".codec")
    payload = codec.encode(MESSAGE)
    decode = min(timeit.repeat(partial(codec.decode, payload), number=20000, repeat=3))
    decode_us = decode / 20000 * 1e6
    python_us = cpu / deliveries * 1e6
    return {
        "Redis commands": commands / deliveries,
        "Lua": (scripts - commands) / deliveries,
        "Python decode": decode_us,
        "Python dispatch": python_us - decode_us,
        "wall": wall / deliveries * 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", nargs="?", help="a commit to compare with")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import aether_compat.layers as new

    contestants = {"now": new}
    scratch = tempfile.TemporaryDirectory()
    if args.old:
        contestants = {
            "before": load_rev(args.old, Path(scratch.name), "aether_compat_old"),
            "after": new,
        }
    server = RedisProcess().start()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contestants}
    try:
        for _ in range(args.repeats):
            for name, layers in contestants.items():
                samples[name].append(await one_sample(layers, server, args.rounds))
    finally:
        server.stop()
        scratch.cleanup()
    names = list(contestants)
    print(f"µs per delivery, group_send to {MEMBERS:,} receivers of one process")
    print("part".ljust(28) + "".join(n.rjust(10) for n in names))
    for sample in (s for runs in samples.values() for s in runs):
        sample["Python total"] = sample["Python decode"] + sample["Python dispatch"]
    for part in (*PARTS, "Python total", "wall"):
        cells = [statistics.median(s[part] for s in samples[n]) for n in names]
        label = "wall (per delivery)" if part == "wall" else part
        print(label.ljust(28) + "".join(f"{c:10.2f}" for c in cells))


if __name__ == "__main__":
    asyncio.run(main())
