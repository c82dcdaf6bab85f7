"""Connection density: what one daphne process pays per idle WebSocket connection.

    python bench/density_bench.py [--connections 10000] [--repeats 3] [--workers 2]
                                  [--settle 3] [--json] [--trace]

Contestants, each in a fresh daphne process per sample, in rotating order:
  ours   an AetherConsumer subclass on our InMemoryChannelLayer; clients offer
         `aether.v1` (heartbeats on), as the JS client does
  stock  a stock Channels AsyncWebsocketConsumer on channels' InMemoryChannelLayer
  floor  a bare ASGI app that accepts and reads (no layer, no groups): what
         daphne, Twisted and autobahn cost per connection whatever the app does
Each connection is in its own user group and in one shared room.

Metrics: bytes per connection = (daphne VmRSS with every client connected and idle,
after a settle and gc) - (VmRSS after one warm-up connection, before the others),
over the connection count; and the time from one broadcast to the room (the `send`
command for ours, a frame `receive()` turns into `group_send` for stock) to the
last client's receipt. Clients live in `--workers` other processes
(`density_clients.py`). `--trace` runs daphne under tracemalloc and prints where
the growth went, by file and line (slow: for finding hot spots, not for figures).
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/density_bench.py` from the root
    sys.path.insert(0, str(ROOT))

from bench.density_clients import REACH_TIMEOUT, worker  # noqa: E402
from bench.ratios import (  # noqa: E402
    Report,
    Row,
    Samples,
    Target,
    notes_of,
    render_table,
    write_json,
)
from bench.ws_client import RawClient  # noqa: E402
from testing_support.asgi_server import AsgiServer  # noqa: E402

CONTESTANTS = {
    # name: (layer, path prefix, subprotocol the clients offer, broadcast frame)
    "ours": (
        "ours",
        "/ws/ours/",
        "aether.v1",
        '{{"action":"send","group":"room:density","message":"{}"}}',
    ),
    "stock": ("stock", "/ws/stock/", None, "{}"),
    # The floor: daphne's own cost, a bare ASGI app behind the same router
    # (no layer, no groups); its broadcast is not measured.
    "floor": ("stock", "/ws/bare/", None, None),
}
FD_MARGIN = 200


def raise_fd_limit(connections: int, workers: int) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); stop with a
    clear message when even the hard limit cannot hold the daphne side."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = connections + FD_MARGIN
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(
            f"RLIMIT_NOFILE hard limit is {hard}: daphne needs about {need} "
            f"descriptors for {connections} connections. Raise it (ulimit -Hn, "
            f"limits.conf or the container's nofile) or pass a smaller --connections."
        )


def vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def control(port: int, what: str = "gc", query: str = "") -> str:
    url = f"http://127.0.0.1:{port}/density/{what}" + (f"?{query}" if query else "")
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read().decode()


def settle(port: int, seconds: float) -> int:
    """Let the process go idle, collect garbage; the task count of the loop."""
    time.sleep(seconds)
    control(port)
    time.sleep(0.5)
    return int(control(port).split()[1])


class Workers:
    """The client processes and their pipes."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=worker, args=(theirs,), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def ask_all(self, commands: list[tuple]) -> list[tuple]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def stop(self) -> None:
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def run_sample(name: str, args: argparse.Namespace, db: Path) -> dict[str, float]:
    layer, prefix, subprotocol, framing = CONTESTANTS[name]
    env = {"BENCH_LAYER": layer, "DJANGO_SETTINGS_MODULE": "bench.density_settings"}
    if args.trace:
        env["DENSITY_TRACEMALLOC"] = "1"
    app = "bench.density_asgi:application"
    server = AsgiServer(db, app, kind=args.server, **env).start()
    workers = Workers(args.workers)
    pid = server.process.pid
    try:
        asyncio.run(_warm_up(server.port, prefix))
        settle(server.port, 1.0)
        before = vm_rss_bytes(pid)
        if args.trace:
            control(server.port, "trace", "mark")
        started = time.perf_counter()
        paths = [f"{prefix}{uid}/" for uid in range(args.connections)]
        shares = [paths[index :: args.workers] for index in range(args.workers)]
        answers = workers.ask_all(
            [("connect", server.port, share, subprotocol) for share in shares]
        )
        opened = sum(answer[1] for answer in answers)
        failed = sum(answer[2] for answer in answers)
        open_seconds = time.perf_counter() - started
        if opened != args.connections:
            raise RuntimeError(f"{name}: {opened} connected, {failed} failed")
        tasks = settle(server.port, args.settle)
        after = vm_rss_bytes(pid)
        if args.trace:
            print(control(server.port, "trace", f"diff={args.trace_top}"), flush=True)
        reach_ms, reached = (
            asyncio.run(_broadcast(server.port, prefix, framing, workers))
            if framing is not None
            else (None, None)
        )
        workers.ask_all([("close",)] * args.workers)
    except Exception:
        print("".join(server.lines[-30:]), file=sys.stderr)
        raise
    finally:
        workers.stop()
        server.stop()
    return {
        "bytes/conn": (after - before) / args.connections,
        "rss before MiB": before / 2**20,
        "rss after MiB": after / 2**20,
        "tasks/conn": tasks / args.connections,
        "open s": open_seconds,
        "reach ms": reach_ms,
        "reached": reached,
    }


async def _warm_up(port: int, prefix: str) -> None:
    client = RawClient(lambda frame: None)
    await client.connect("127.0.0.1", port, f"{prefix}warm-up/")
    await client.close()


async def _broadcast(port: int, prefix: str, framing: str, workers: Workers):
    """One broadcast to the room from a client of its own; ms until the last of the
    idle clients got it, and how many did."""
    sender = RawClient(lambda frame: None)
    for attempt in range(3):
        try:
            await sender.connect("127.0.0.1", port, f"{prefix}broadcaster/")
            break
        except OSError:
            if attempt == 2:
                raise
    token = f"density-{time.time_ns()}"
    for pipe in workers.pipes:
        pipe.send(("arm", token.encode()))
    for pipe in workers.pipes:
        assert pipe.recv() == ("armed",)
    sent_ns = time.time_ns()
    sender.send_text(framing.format(token))
    loop = asyncio.get_running_loop()
    answers = [await loop.run_in_executor(None, pipe.recv) for pipe in workers.pipes]
    await sender.close()
    reached = sum(answer[1] for answer in answers)
    last = max(answer[2] for answer in answers)
    # Not all within the clients' REACH_TIMEOUT: no reach time (the count says).
    expected = sum(answer[3] for answer in answers) if len(answers[0]) > 3 else None
    if reached == 0 or (expected is not None and reached < expected):
        return None, reached
    return (last - sent_ns) / 1e6, reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--only", choices=list(CONTESTANTS), nargs="+")
    parser.add_argument(
        "--server",
        choices=("daphne", "uvicorn", "hypercorn"),
        default="daphne",
        help="the ASGI server (the issue's target is stated for daphne)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--trace-top", type=int, default=45, help="lines --trace shows")
    args = parser.parse_args()
    raise_fd_limit(args.connections, args.workers)
    samples = Samples()
    names = args.only or list(CONTESTANTS)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "density.sqlite3"
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                result = run_sample(name, args, db)
                if result["reached"] is None:
                    reach = "no broadcast"
                elif result["reach ms"] is None:
                    reach = (
                        f"broadcast reached only {result['reached']:.0f} within "
                        f"{REACH_TIMEOUT:g} s"
                    )
                else:
                    reach = (
                        f"broadcast reached {result['reached']:.0f} in "
                        f"{result['reach ms']:.0f} ms"
                    )
                print(
                    f"repeat {repeat + 1} {name:5} {result['bytes/conn']:8,.0f} B/conn "
                    f"(RSS {result['rss before MiB']:.1f} -> "
                    f"{result['rss after MiB']:.1f} MiB)  "
                    f"tasks/conn {result['tasks/conn']:.2f}  opened in "
                    f"{result['open s']:.1f} s  {reach}",
                    flush=True,
                )
                for metric in ("bytes/conn", "reach ms", "tasks/conn"):
                    if result[metric] is not None:
                        samples.add(metric, name, result[metric])
                if result["reached"] is not None:
                    samples.add("all reached", name, float(result["reached"]))
    rows = _rows(samples, args.connections)
    print(render_table(rows, peer="stock"))
    print("\n".join(notes_of(rows)))
    if args.json:
        report = Report("density", vars(args), rows, samples)
        print(write_json(report, ROOT / "bench" / "results"))


def _above(samples: Samples, name: str) -> float | None:
    value, floor = (
        samples.median("bytes/conn", name),
        samples.median("bytes/conn", "floor"),
    )
    return None if value is None or floor is None else value - floor


def _rows(samples: Samples, connections: int) -> list[Row]:
    reach = samples.median("reach ms", "ours")
    reached = min(samples.values("all reached", "ours") or [0])
    return [
        Row(
            f"server bytes/conn ({connections} idle)",
            samples.median("bytes/conn", "ours"),
            samples.median("bytes/conn", "stock"),
            floor=samples.median("bytes/conn", "floor"),
            target=Target("<=", 0.5),
        ),
        Row(
            "server bytes/conn above daphne's floor",
            _above(samples, "ours"),
            _above(samples, "stock"),
            note="each contestant's median minus the bare ASGI app's",
        ),
        Row(
            "broadcast reach ms (last client)",
            reach,
            samples.median("reach ms", "stock"),
            floor=2000.0,
            against="floor",
            target=Target("<=", 1.0),
            note=f"ours reached {reached:.0f} of {connections} at least",
        ),
        Row(
            "asyncio tasks/conn",
            samples.median("tasks/conn", "ours"),
            samples.median("tasks/conn", "stock"),
        ),
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
