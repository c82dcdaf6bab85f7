"""End to end through daphne: C WebSocket clients in one room and one broadcaster.

    python bench/e2e_bench.py [--clients 100 500] [--repeats 3] [--seconds 4] [--json]
                              [--profile DIR] [--redis] [--paced 2000]
                              [--paced-seconds S] [--window 8] [--only NAME ...]

Contestants, each in fresh daphne processes per sample, in rotating order:
  ours             AetherConsumer on our InMemoryChannelLayer (`send` command)
  stock            a stock Channels consumer (group_send + handler) on channels'
                   InMemoryChannelLayer: what the target compares against
  stock-on-ours    the stock consumer on our layer, to tell the layer's share of
                   the difference from the consumer's
With --redis (bench/e2e_modes.py): two daphne servers on a private redis-server,
clients alternating between them, the broadcaster on the first; contestants
ours-redis (our RedisChannelLayer), stock-pubsub (channels_redis'
RedisPubSubChannelLayer) and stock-on-ours-redis.
Metrics: deliveries per second with the broadcaster keeping --window broadcasts in
flight (saturation: a broadcast leaves the window once the broadcaster's own copy
and, with two servers, a member's copy on the other server came back), and p50/p99
latency from send to receipt at a paced rate (deliveries/s over all clients),
measured once every member has every saturation broadcast.
"""

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/e2e_bench.py` from the root
    sys.path.insert(0, str(ROOT))

from bench.e2e_modes import IN_MEMORY, REDIS, TARGET_CLIENTS, Mode, backend  # noqa: E402
from bench.e2e_profile import profile_summary  # noqa: E402
from bench.ratios import (  # noqa: E402
    Report,
    Row,
    Samples,
    notes_of,
    render_table,
    write_json,
)
from bench.ws_client import RawClient  # noqa: E402
from testing_support.asgi_server import AsgiServer  # noqa: E402

WINDOW = 8  # broadcasts in flight while saturating, unless --window says otherwise
STAMP = re.compile(rb"(\d+) (\d{19})")


class Room:
    """The clients of one sample: counters for all, latency samples for a few, and
    the broadcasts that every watcher has seen (`echoes`)."""

    def __init__(self, watchers: int) -> None:
        self.delivered = 0
        self.latencies: list[tuple[float, int]] = []  # (ms, server index)
        self.watchers = watchers
        self.seen: dict[int, int] = {}
        self.echoes: asyncio.Queue[int] = asyncio.Queue()
        self.expected = -1
        self.settled = asyncio.Event()

    async def settle(self, expected: int) -> int:
        """Wait until `expected` deliveries arrived in all (every broadcast goes to
        every member once), at most 10 s; return how many are missing. Without
        it, frames of the saturation phase that the watchers had but other
        members had not would be counted as latencies of the paced phase."""
        self.expected = expected
        if self.delivered < expected:
            self.settled.clear()
            try:
                async with asyncio.timeout(10):
                    await self.settled.wait()
            except TimeoutError:
                pass
        return max(0, expected - self.delivered)

    def counter(self, sampled: bool, watcher: bool = False, server: int = 0):
        def on_text(frame: bytes) -> None:
            self.delivered += 1
            if self.delivered == self.expected:
                self.settled.set()
            if sampled and (match := STAMP.search(frame)):
                ms = (time.time_ns() - int(match[2])) / 1e6
                self.latencies.append((ms, server))
            if watcher:
                self.echo(frame)

        return on_text

    def echo(self, frame: bytes) -> None:
        if match := STAMP.search(frame):
            seq = int(match[1])
            count = self.seen.pop(seq, 0) + 1
            if count == self.watchers:
                self.echoes.put_nowait(seq)
            else:
                self.seen[seq] = count


async def run_sample(
    mode: Mode, ports: list[int], path: str, clients: int, args: argparse.Namespace
):
    """Client i joins the server ports[i % len(ports)]; the broadcaster joins the
    first; with two servers, member 1 (on the second) watches too."""
    room = Room(watchers=2 if len(ports) > 1 else 1)
    sampled = mode.sampled(clients)
    members = []
    for index in range(clients):
        watcher = len(ports) > 1 and index == 1
        server = index % len(ports)
        client = RawClient(room.counter(index in sampled, watcher, server))
        await client.connect("127.0.0.1", ports[server], path)
        members.append(client)
    broadcaster = RawClient(room.echo)
    await broadcaster.connect("127.0.0.1", ports[0], path)
    frame = _framer(path)
    await _broadcast_round(broadcaster, frame, room, 0)  # everyone is in the room
    cpu, wall = time.process_time(), time.perf_counter()
    rate, last_seq = await _saturate(
        broadcaster, frame, room, args.seconds, args.window
    )
    # The bench client's own CPU share while saturating: near 100% means the
    # client, not the servers, set the rate.
    client_cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)
    if missing := await room.settle(clients * (last_seq + 1)):
        print(f"  {missing} deliveries of the saturation phase never arrived")
    room.latencies.clear()
    paced_seconds = args.paced_seconds or args.seconds
    await _paced(broadcaster, frame, room, paced_seconds, args.paced / clients)
    for client in [*members, broadcaster]:
        await client.close()
    latencies = sorted(ms for ms, _ in room.latencies)
    per_server = [
        _percentile(sorted(ms for ms, at in room.latencies if at == server), 99)
        for server in range(len(ports))
    ]
    return (
        rate,
        _percentile(latencies, 50),
        _percentile(latencies, 99),
        client_cpu,
        per_server,
    )


def _by_server(p99s: list[float | None]) -> str:
    """The p99 of each server's sampled clients, when there are two: the second
    one's frames crossed Redis (or, for the pub/sub layer, both did)."""
    if len(p99s) < 2:
        return ""
    return ", p99 " + " / ".join(
        f"{'ab'[i]} {p:.0f} ms" for i, p in enumerate(p99s) if p is not None
    )


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


async def _saturate(broadcaster, frame, room, seconds, window) -> tuple[float, int]:
    """Deliveries per second with `window` broadcasts in flight, acknowledged by
    every watcher's copy coming back; and the last broadcast's number."""
    seq, start_count, start = 1, room.delivered, time.perf_counter()
    for _ in range(window):
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
        for _ in range(window):
            await room.echoes.get()
    return delivered / elapsed, seq - 1


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


def sample(
    mode: Mode, name: str, clients: int, args: argparse.Namespace, db: Path, env: dict
) -> tuple:
    layer, path = mode.contestants[name]
    servers = []
    try:
        for index in range(mode.servers):
            launcher: tuple[str, ...] = (sys.executable, "-m", "daphne")
            profile = _profile_path(args, mode, name, clients, index)
            if profile:
                launcher = (sys.executable, "-m", "cProfile", "-o", str(profile))
                launcher += ("-m", "daphne")
            server = AsgiServer(
                db,
                "bench.e2e_asgi:application",
                launcher,
                BENCH_LAYER=layer,
                DJANGO_SETTINGS_MODULE="bench.e2e_settings",
                **env,
            )
            servers.append(server)
            server.start()
        ports = [server.port for server in servers]
        return asyncio.run(run_sample(mode, ports, path, clients, args))
    finally:
        for index, server in enumerate(servers):
            server.stop()
            if profile := _profile_path(args, mode, name, clients, index):
                print(profile_summary(profile))


def _profile_path(args, mode: Mode, name: str, clients: int, index: int):
    if not args.profile:
        return None
    server = f"-{'ab'[index]}" if mode.servers > 1 else ""
    return args.profile / f"{name}-{clients}{server}.prof"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--only", nargs="+", help="run these contestants only")
    parser.add_argument(
        "--paced-seconds", type=float, help="length of the paced phase (--seconds)"
    )
    parser.add_argument(
        "--paced", type=float, default=2000, help="deliveries/s of the paced phase"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="two daphne servers on a private redis-server (bench/e2e_modes.py)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run daphne under cProfile, write DIR/<contestant>-<C>.prof, summarise",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    mode = REDIS if args.redis else IN_MEMORY
    samples = Samples()
    names = [name for name in mode.contestants if name in (args.only or [name])]
    width = max(map(len, names))
    with tempfile.TemporaryDirectory() as folder, backend(mode) as sample_env:
        db = Path(folder) / "bench.sqlite3"
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for clients in args.clients:
                for name in order:
                    env = sample_env(name)
                    rate, p50, p99, cpu, by_server = sample(
                        mode, name, clients, args, db, env
                    )
                    print(
                        f"repeat {repeat + 1} C={clients} {name:{width}} {rate:9,.0f} "
                        f"deliveries/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
                        f"(bench client CPU {100 * cpu:.0f}%{_by_server(by_server)})",
                        flush=True,
                    )
                    samples.add(f"deliveries/s C={clients}", name, rate)
                    samples.add(f"p50 ms C={clients}", name, p50)
                    samples.add(f"p99 ms C={clients}", name, p99)
    rows = _rows(mode, samples, args)
    print(render_table(rows, peer=mode.peer))
    print("\n".join(notes_of(rows)))
    print(render_table(_rows(mode, samples, args, mode.decomposition), peer=mode.peer))
    if args.json:
        report = Report(mode.name, {**vars(args), "mode": mode.name}, rows, samples)
        print(write_json(report, ROOT / "bench" / "results"))


def _rows(
    mode: Mode, samples: Samples, args: argparse.Namespace, ours: str | None = None
) -> list[Row]:
    ours = ours or mode.ours
    rows = []
    for clients in args.clients:
        big = clients >= TARGET_CLIENTS and ours == mode.ours
        for metric, target in (
            (f"deliveries/s C={clients}", mode.deliveries_target if big else None),
            (f"p50 ms C={clients}", None),
            (f"p99 ms C={clients}", mode.p99_target if big else None),
        ):
            note = ""
            if metric.startswith("p99") and ours == mode.ours:
                note = _pacing_note(mode, samples, clients, args.paced)
            rows.append(
                Row(
                    f"{ours}: {metric}",
                    samples.median(metric, ours),
                    samples.median(metric, mode.peer),
                    target=target,
                    note=note,
                )
            )
    return rows


def _pacing_note(mode: Mode, samples: Samples, clients: int, paced: float) -> str:
    """Latency compares fairly only at a rate both sustain: at most half the
    slower contestant's saturated rate (medians)."""
    metric = f"deliveries/s C={clients}"
    rates = [samples.median(metric, name) or 0.0 for name in (mode.ours, mode.peer)]
    half = min(rates) / 2
    verdict = "ok" if paced <= half else "TOO FAST: lower --paced"
    return f"paced {paced:,.0f}/s, half the slower saturation {half:,.0f}/s: {verdict}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
