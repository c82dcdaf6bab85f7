"""Our InMemoryChannelLayer against channels' own, side by side in one run, with a raw
asyncio.Queue as the floor.

    python bench/memory_bench.py [--quick] [--repeats N] [--json]

Each repeat measures every contestant once per metric, in rotating order; the table
shows medians. Every contestant gets the same message, the same parked receivers
(bench/harness.py) and the same clock. Only channels' layer at 10,000 members has its
rounds cut at a time budget, because one whole round of it takes minutes.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/memory_bench.py` from the root
    sys.path.insert(0, str(ROOT))

import channels  # noqa: E402
from channels.layers import InMemoryChannelLayer as ChannelsLayer  # noqa: E402

from aether_compat.layers import InMemoryChannelLayer as OurLayer  # noqa: E402
from bench.harness import (  # noqa: E402
    Arrivals,
    Broadcast,
    Receive,
    bare_task_bytes,
    measure_memory,
    park,
    stop,
    timed_rounds,
)
from bench.ratios import (  # noqa: E402
    Report,
    Row,
    Samples,
    Target,
    notes_of,
    render_table,
    write_json,
)

MESSAGE = {"type": "chat.message", "text": "Hello, everyone in the room!", "n": 42}
FAN_OUT_SIZES = (1, 100, 1_000, 10_000)
FAN_OUT_TARGETS = {1_000: Target(">=", 30), 10_000: Target(">=", 50)}
CHURN_CHANNELS = 1_000
PARKED_CHANNELS = 10_000  # memory is traced while this fan-out's members park
GROUP = "bench-room"
CONTESTANTS = ("ours", "theirs", "floor")


class NullLayer:
    """The least a layer can do: no queue, no copy, no name check, no capacity. Its
    round trips are the most any layer can reach in this harness (the ceiling)."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[Any]] = {}

    async def new_channel(self) -> str:
        return f"null!{len(self._waiters)}"

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        waiter = self._waiters.pop(channel, None)
        if waiter is not None:
            waiter.set_result(message)

    async def receive(self, channel: str) -> dict[str, Any]:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[channel] = waiter
        return await waiter


LAYERS: dict[str, Callable[[], Any]] = {
    "ours": OurLayer,
    "theirs": ChannelsLayer,
    "ceiling": NullLayer,
}


@dataclass(frozen=True)
class Plan:
    """How long to measure: each sample runs whole rounds until `sample_seconds` have
    passed; a single fan-out round is cut after `round_budget` seconds."""

    repeats: int
    sample_seconds: float
    round_budget: float


FULL = Plan(repeats=3, sample_seconds=0.4, round_budget=3.0)
QUICK = Plan(repeats=1, sample_seconds=0.05, round_budget=1.0)


# Members: parked first, in the group after, the order a consumer follows.


async def layer_members(
    layer: Any, count: int, arrivals: Arrivals
) -> tuple[list[asyncio.Task], Broadcast]:
    names = [await layer.new_channel() for _ in range(count)]
    tasks = await park([partial(layer.receive, name) for name in names], arrivals)
    for name in names:
        await layer.group_add(GROUP, name)
    return tasks, partial(layer.group_send, GROUP, MESSAGE)


async def queue_members(
    count: int, arrivals: Arrivals
) -> tuple[list[asyncio.Task], Broadcast]:
    queues: list[asyncio.Queue] = [asyncio.Queue() for _ in range(count)]

    async def broadcast() -> None:
        for queue in queues:
            queue.put_nowait(MESSAGE)

    return await park([queue.get for queue in queues], arrivals), broadcast


async def members_for(
    contestant: str, count: int, arrivals: Arrivals
) -> tuple[list[asyncio.Task], Broadcast]:
    if contestant == "floor":
        return await queue_members(count, arrivals)
    return await layer_members(LAYERS[contestant](), count, arrivals)


# Measurements: each returns one sample.


async def fan_out(
    contestant: str, members: int, plan: Plan, traced: bool = False
) -> tuple[float, int | None, int | None]:
    """One group_send plus every member receiving it, in deliveries per second; the
    members reached when a round was cut; with `traced`, the bytes parking took."""
    arrivals = Arrivals()
    setup = partial(members_for, contestant, members, arrivals)
    (tasks, broadcast), used = await measure_memory(setup, traced)
    try:
        rate, cut_at = await timed_rounds(
            broadcast, arrivals, members, plan.sample_seconds, plan.round_budget
        )
    finally:
        await stop(tasks)
    return rate, cut_at, used


async def one_channel(contestant: str) -> tuple[Broadcast, Receive]:
    """A send and a receive on one channel of `contestant` (a queue for the floor)."""
    if contestant == "floor":
        queue: asyncio.Queue = asyncio.Queue()

        async def send() -> None:
            queue.put_nowait(MESSAGE)

        return send, queue.get
    layer = LAYERS[contestant]()
    channel = await layer.new_channel()
    return partial(layer.send, channel, MESSAGE), partial(layer.receive, channel)


async def round_trips(contestant: str, plan: Plan) -> float:
    """One sender, one receiver parked in receive(): a message sent, received, and
    the sender told, per second. The floor is a put_nowait/get on one queue."""
    send, receive = await one_channel(contestant)
    arrivals = Arrivals()
    tasks = await park([receive], arrivals)
    try:
        rate, _ = await timed_rounds(
            send, arrivals, 1, plan.sample_seconds, plan.round_budget
        )
    finally:
        await stop(tasks)
    return rate


async def inline_round_trips(contestant: str, plan: Plan) -> float:
    """send then receive on one channel in one task, per second: the layer's own
    cost of a message, with no task switch in between."""
    send, receive = await one_channel(contestant)
    trips, start = 0, time.perf_counter()
    deadline = start + plan.sample_seconds
    while True:
        for _ in range(100):
            await send()
            await receive()
        trips += 100
        if (now := time.perf_counter()) >= deadline:
            break
    return trips / (now - start)


async def churn(contestant: str, plan: Plan) -> float:
    """group_add and group_discard calls per second, on channels whose consumers
    are parked in receive(): all join one group, then all leave it, and again."""
    layer = LAYERS[contestant]()
    names = [await layer.new_channel() for _ in range(CHURN_CHANNELS)]
    tasks = await park([partial(layer.receive, name) for name in names], Arrivals())
    calls, start = 0, time.perf_counter()
    deadline = start + plan.sample_seconds
    while True:
        for name in names:
            await layer.group_add("churn", name)
        for name in names:
            await layer.group_discard("churn", name)
        calls += 2 * len(names)
        if (now := time.perf_counter()) >= deadline:
            break
    await stop(tasks)
    return calls / (now - start)


# The run: every contestant once per metric per repeat, in rotating order.


def rotated(repeat: int, names: tuple[str, ...]) -> tuple[str, ...]:
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


async def run_repeat(repeat: int, plan: Plan, samples: Samples) -> None:
    for contestant in rotated(repeat, CONTESTANTS):
        rate = await inline_round_trips(contestant, plan)
        samples.add("inline_round_trip", contestant, rate)
    for contestant in rotated(repeat, (*CONTESTANTS, "ceiling")):
        samples.add("round_trip", contestant, await round_trips(contestant, plan))
    # Memory is traced in the first repeat only: byte counts do not depend on the
    # clock, and tracing slows channels' 10,000-member set-up by half again.
    bare = await bare_task_bytes(PARKED_CHANNELS) if repeat == 0 else 0
    for size in FAN_OUT_SIZES:
        for contestant in rotated(repeat, CONTESTANTS):
            traced = size == PARKED_CHANNELS and repeat == 0
            rate, cut_at, used = await fan_out(contestant, size, plan, traced)
            samples.add(f"fan_out_{size}", contestant, rate)
            if cut_at is not None:
                samples.add(f"fan_out_{size}_cut_at", contestant, cut_at)
            if used is not None:
                samples.add("parked_bytes", contestant, (used - bare) / size)
    for contestant in rotated(repeat, ("ours", "theirs")):
        samples.add("churn", contestant, await churn(contestant, plan))


async def run(plan: Plan) -> Samples:
    samples = Samples()
    for repeat in range(plan.repeats):
        began = time.perf_counter()
        await run_repeat(repeat, plan, samples)
        took = time.perf_counter() - began
        print(f"repeat {repeat + 1}/{plan.repeats}: {took:.1f} s", file=sys.stderr)
        sys.stderr.flush()
    return samples


# The table.


def build_rows(samples: Samples, plan: Plan) -> list[Row]:
    def medians(metric: str) -> dict[str, float | None]:
        return {name: samples.median(metric, name) for name in CONTESTANTS}

    trips = medians("round_trip")
    rows = [
        Row(
            "round trips/s (send, then receive)",
            **medians("inline_round_trip"),
            target=Target(">=", 3),
            note=INLINE_NOTE,
        ),
        Row(
            "round trips/s to a parked receiver",
            **trips,
            note=ceiling_note(samples.median("round_trip", "ceiling"), trips["theirs"]),
        ),
    ]
    for size in FAN_OUT_SIZES:
        rows.append(
            Row(
                f"fan-out to {size:,}, deliveries/s",
                **medians(f"fan_out_{size}"),
                target=FAN_OUT_TARGETS.get(size),
                note=cut_note(samples, size, plan),
            )
        )
    at_1000 = medians("fan_out_1000")
    rows.append(
        Row(
            "fan-out to 1,000 vs floor",
            ours=at_1000["ours"],
            floor=at_1000["floor"],
            target=Target(">=", 0.8),
            against="floor",
        )
    )
    rows.append(
        Row("group_add+discard calls/s", **medians("churn"), target=Target(">=", 1))
    )
    rows.append(
        Row(
            "bytes per parked channel",
            **medians("parked_bytes"),
            target=Target("<=", 1),
            note=MEMORY_NOTE,
        )
    )
    return rows


INLINE_NOTE = (
    "one task sends a message to a channel and receives it back, 100 times a batch: "
    "what the layer itself costs per message"
)

MEMORY_NOTE = (
    f"{PARKED_CHANNELS:,} channels from new_channel(), each with a consumer parked in "
    "receive() and in one group; tracemalloc bytes (first repeat) less the same tasks "
    "parked on bare futures; floor = one asyncio.Queue per consumer"
)


def ceiling_note(ceiling: float | None, theirs: float | None) -> str:
    if not ceiling or not theirs:
        return ""
    return (
        f"a layer that does nothing (no queue, copy or check) makes {ceiling:,.0f}/s "
        f"here, {ceiling / theirs:.2f}x theirs: two asyncio wake-ups per round trip "
        "bound this ratio for any layer"
    )


def cut_note(samples: Samples, size: int, plan: Plan) -> str:
    reached = samples.values(f"fan_out_{size}_cut_at", "theirs")
    if not reached:
        return ""
    counts = ", ".join(f"{count:,.0f}" for count in reached)
    return (
        f"theirs' rounds were cut at {plan.round_budget:g} s, after {counts} of "
        f"{size:,} deliveries (a whole round takes minutes); the rate counts those"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Our InMemoryChannelLayer against channels' own, as ratios."
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: one short repeat"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"repeats to take medians over (default {FULL.repeats}; 1 with --quick)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also write the results to bench/results/"
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = Plan(args.repeats, plan.sample_seconds, plan.round_budget)
    print(
        f"ours: aether_compat InMemoryChannelLayer; theirs: channels "
        f"{channels.__version__} InMemoryChannelLayer; floor: raw asyncio.Queue; "
        f"Python {sys.version.split()[0]}; medians of {plan.repeats} repeat(s)",
        flush=True,
    )
    samples = asyncio.run(run(plan))
    rows = build_rows(samples, plan)
    print(render_table(rows))
    for note in notes_of(rows):
        print(f"note: {note}")
    judged = [row for row in rows if row.target]
    print(f"targets met: {sum(1 for row in judged if row.met)} of {len(judged)}")
    if args.json:
        settings = {
            **asdict(plan),
            "message": MESSAGE,
            "channels": channels.__version__,
        }
        report = Report("memory_bench", settings, rows, samples)
        print(f"wrote {write_json(report, ROOT / 'bench' / 'results')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
