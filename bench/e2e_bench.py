"""End to end through daphne: C WebSocket clients in one room and one broadcaster.

    python bench/e2e_bench.py [--clients 100 500] [--repeats 3] [--seconds 4] [--json]
                              [--profile DIR]

Contestants, each in a fresh daphne process per sample, in rotating order:
  ours             AetherConsumer on our InMemoryChannelLayer (`send` command)
  stock            a stock Channels consumer (group_send + handler) on channels'
                   InMemoryChannelLayer: what the target compares against
  stock-on-ours    the stock consumer on our layer, to tell the layer's share of
                   the difference from the consumer's
Metrics: deliveries per second with the broadcaster keeping WINDOW broadcasts in
flight (saturation), and p50/p99 latency from send to receipt at a paced rate.
"""

import argparse
import asyncio
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/e2e_bench.py` from the root
    sys.path.insert(0, str(ROOT))

from bench.ratios import Report, Row, Samples, Target, render_table, write_json  # noqa: E402
from bench.ws_client import RawClient  # noqa: E402
from testing_support.asgi_server import AsgiServer  # noqa: E402

CONTESTANTS = {
    "ours": ("ours", "/ws/ours/"),
    "stock": ("stock", "/ws/stock/"),
    "stock-on-ours": ("ours", "/ws/stock/"),
}
WINDOW = 8
LATENCY_CLIENTS = 20
STAMP = re.compile(rb"(\d+) (\d{19})")


class Room:
    """The clients of one sample: counters for all, latency samples for a few."""

    def __init__(self) -> None:
        self.delivered = 0
        self.latencies: list[float] = []
        self.echoes: asyncio.Queue[int] = asyncio.Queue()

    def counter(self, sampled: bool):
        def on_text(frame: bytes) -> None:
            self.delivered += 1
            if sampled and (match := STAMP.search(frame)):
                self.latencies.append((time.time_ns() - int(match[2])) / 1e6)

        return on_text

    def echo(self, frame: bytes) -> None:
        if match := STAMP.search(frame):
            self.echoes.put_nowait(int(match[1]))


async def run_sample(port: int, path: str, clients: int, seconds: float, paced: float):
    room = Room()
    members = []
    for index in range(clients):
        client = RawClient(room.counter(index < LATENCY_CLIENTS))
        await client.connect("127.0.0.1", port, path)
        members.append(client)
    broadcaster = RawClient(room.echo)
    await broadcaster.connect("127.0.0.1", port, path)
    frame = _framer(path)
    await _broadcast_round(broadcaster, frame, room, 0)  # everyone is in the room
    rate = await _saturate(broadcaster, frame, room, seconds)
    room.latencies.clear()
    await _paced(broadcaster, frame, room, seconds, paced / clients)
    latencies = sorted(room.latencies)
    for client in [*members, broadcaster]:
        await client.close()
    return rate, _percentile(latencies, 50), _percentile(latencies, 99)


def _framer(path: str):
    if "ours" in path:
        command = '{{"action":"send","group":"room:bench","message":"{} {}"}}'
        return lambda seq: command.format(seq, time.time_ns())
    return lambda seq: f"{seq} {time.time_ns()}"


async def _broadcast_round(broadcaster, frame, room, seq):
    broadcaster.send_text(frame(seq))
    async with asyncio.timeout(10):
        while await room.echoes.get() != seq:
            pass


async def _saturate(broadcaster, frame, room, seconds) -> float:
    """Deliveries per second with WINDOW broadcasts in flight, acknowledged by the
    broadcaster's own copy coming back."""
    seq, start_count, start = 1, room.delivered, time.perf_counter()
    for _ in range(WINDOW):
        broadcaster.send_text(frame(seq))
        seq += 1
    while time.perf_counter() - start < seconds:
        async with asyncio.timeout(10):
            await room.echoes.get()
        broadcaster.send_text(frame(seq))
        seq += 1
    elapsed = time.perf_counter() - start
    delivered = room.delivered - start_count
    async with asyncio.timeout(10):  # drain what is still in flight
        for _ in range(WINDOW):
            await room.echoes.get()
    return delivered / elapsed


async def _paced(broadcaster, frame, room, seconds, per_second):
    interval = 1 / per_second
    next_at = time.perf_counter()
    deadline = next_at + seconds
    seq = 10**9
    while next_at < deadline:
        await asyncio.sleep(
            max(0.0, next_at - time.perf_counter())
        )  # the clock is the subject
        broadcaster.send_text(frame(seq))
        seq += 1
        next_at += interval
    await _broadcast_round(broadcaster, frame, room, seq)


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def sample(name: str, clients: int, args: argparse.Namespace, db: Path) -> tuple:
    layer, path = CONTESTANTS[name]
    launcher: tuple[str, ...] = (sys.executable, "-m", "daphne")
    profile = args.profile / f"{name}-{clients}.prof" if args.profile else None
    if profile:
        launcher = (sys.executable, "-m", "cProfile", "-o", str(profile), *launcher[1:])
    server = AsgiServer(
        db,
        "bench.e2e_asgi:application",
        launcher,
        BENCH_LAYER=layer,
        DJANGO_SETTINGS_MODULE="bench.e2e_settings",
    ).start()
    try:
        return asyncio.run(
            run_sample(server.port, path, clients, args.seconds, args.paced)
        )
    finally:
        server.stop()
        if profile:
            print(profile_summary(profile))


AREAS = (
    ("aether_compat/layers", "our layer"),
    ("aether_compat", "aether consumer"),
    ("channels/layers.py", "channels layer"),
    ("/channels/", "channels consumer"),
    ("/asgiref/", "thread hop"),
    ("concurrent/futures", "thread hop"),
    ("threading.py", "thread hop"),
    ("/autobahn/", "daphne+twisted+autobahn"),
    ("/twisted/", "daphne+twisted+autobahn"),
    ("/daphne/", "daphne+twisted+autobahn"),
    ("asyncio", "asyncio loop"),
    ("selectors.py", "asyncio loop"),
)


def profile_summary(path: Path) -> str:
    """daphne's CPU time (cProfile tottime) by where the code lives, as shares of
    the busy time; time blocked in epoll is reported apart as idle."""
    by_area: dict[str, float] = {}
    for (filename, _line, function), row in pstats.Stats(str(path)).stats.items():
        area = _area(filename, function)
        by_area[area] = by_area.get(area, 0.0) + row[2]
    idle = by_area.pop("idle", 0.0)
    busy = sum(by_area.values()) or 1.0
    ranked = sorted(by_area.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{area} {100 * t / busy:.0f}%" for area, t in ranked)
    return f"  daphne busy {busy:.1f} s, idle {idle:.1f} s: {shares}"


def _area(filename: str, function: str) -> str:
    if filename == "~":
        if "poll" in function:
            return "idle"
        if "_socket.socket" in function:
            return "socket writes"
        if "lock" in function or "acquire" in function:
            return "thread hop"
        return "builtins"
    for fragment, area in AREAS:
        if fragment in filename:
            return area
    return "other (startup, logging)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--paced", type=float, default=2000, help="deliveries/s of the paced phase"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run daphne under cProfile, write DIR/<contestant>-<C>.prof, summarise",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    samples = Samples()
    names = list(CONTESTANTS)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.sqlite3"
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for clients in args.clients:
                for name in order:
                    rate, p50, p99 = sample(name, clients, args, db)
                    print(
                        f"repeat {repeat + 1} C={clients} {name:13} {rate:9,.0f} "
                        f"deliveries/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms",
                        flush=True,
                    )
                    samples.add(f"deliveries/s C={clients}", name, rate)
                    samples.add(f"p50 ms C={clients}", name, p50)
                    samples.add(f"p99 ms C={clients}", name, p99)
    rows = _rows(samples, args.clients)
    print(render_table(rows, peer="stock"))
    print(render_table(_rows(samples, args.clients, "stock-on-ours"), peer="stock"))
    if args.json:
        report = Report("e2e", vars(args), rows, samples)
        print(write_json(report, ROOT / "bench" / "results"))


def _rows(samples: Samples, sizes: list[int], ours: str = "ours") -> list[Row]:
    rows = []
    for clients in sizes:
        big = clients >= 500 and ours == "ours"
        for metric, target in (
            (f"deliveries/s C={clients}", Target(">=", 1.3) if big else None),
            (f"p50 ms C={clients}", None),
            (f"p99 ms C={clients}", Target("<=", 0.8) if big else None),
        ):
            rows.append(
                Row(
                    f"{ours}: {metric}",
                    samples.median(metric, ours),
                    samples.median(metric, "stock"),
                    target=target,
                )
            )
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
