"""Helpers of the reliability tests (issue 6): what clients received, paced
broadcasts, readings of a server process (memory, CPU), and the figures each
scenario reports.

Figures go to stdout (`pytest -rP` shows them) and, when the environment names a
file in `AETHER_RELIABILITY_FIGURES`, to that file as JSON lines, from which
`bench/reliability_report.py` builds its table.
"""

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

from tests.support.light_client import LightClient

FIGURES_ENV = "AETHER_RELIABILITY_FIGURES"


class Tally:
    """What one client received: broadcast sequence numbers (frames that are a bare
    number) in arrival order; every other frame goes on to `other`."""

    def __init__(self, other: Callable[[bytes], None]) -> None:
        self.seqs: list[int] = []
        self.arrived: dict[int, float] = {}
        self.other = other
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @classmethod
    def attach(cls, client: LightClient) -> "Tally":
        tally = cls(client.texts.put_nowait)
        client.on_text = tally
        return tally

    def __call__(self, frame: bytes) -> None:
        if not frame[:1].isdigit():
            self.other(frame)
            return
        seq = int(frame)
        self.seqs.append(seq)
        self.arrived.setdefault(seq, time.monotonic())
        if self._waiters:
            for wanted, future in list(self._waiters):
                if seq >= wanted and not future.done():
                    future.set_result(None)

    async def until_seen(self, seq: int, within: float) -> None:
        """Wait until a number >= `seq` arrives (or has arrived)."""
        if self.seqs and max(self.seqs) >= seq:
            return
        future = asyncio.get_running_loop().create_future()
        entry = (seq, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(within):
                await future
        finally:
            self._waiters.remove(entry)

    def duplicates(self) -> int:
        return len(self.seqs) - len(set(self.seqs))

    def out_of_order(self) -> int:
        return sum(1 for a, b in zip(self.seqs, self.seqs[1:], strict=False) if b <= a)


@dataclasses.dataclass
class Outcome:
    """One broadcast: when it started and ended, and its SendResult counts."""

    seq: int
    started: float
    ended: float
    sent: int
    failed: int
    errors: tuple[str, ...]


async def paced_broadcasts(
    group: Any,
    first: int,
    count: int,
    rate: float,
    marks: dict[int, asyncio.Event] | None = None,
) -> list[Outcome]:
    """Broadcast the numbers `first`.. `first + count - 1` to `group` (a facade
    Group) at `rate` per second; a call that took long is caught up on, so the count
    is fixed. `marks[seq]` is set once `seq` was broadcast (to time faults)."""
    outcomes: list[Outcome] = []
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0.002:
            await asyncio.sleep(delay)  # the clock is the subject: a steady rate
        seq = first + index
        began = time.monotonic()
        result = await group.broadcast(str(seq))
        outcomes.append(
            Outcome(
                seq,
                began,
                time.monotonic(),
                result.sent_count,
                result.failed_count,
                tuple(type(error).__name__ for error in result.errors),
            )
        )
        if marks and seq in marks:
            marks[seq].set()
    return outcomes


# Readings of a server process


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid`."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class MemoryWatch:
    """Samples a process's RSS from a task until stopped: baseline and peak."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid = pid
        self.every = every
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._task = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        while True:  # the clock is the subject: a reading every `every` seconds
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(self.every)

    async def stop(self) -> int:
        """Stop sampling; the peak growth over the baseline, in bytes."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, rss_bytes(self.pid))
        return self.peak - self.baseline


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def mib(size: float) -> float:
    return round(size / (1024 * 1024), 1)


def record_figures(scenario: str, promise: str, **figures: Any) -> None:
    """Print one scenario's figures and, if asked, append them for the report,
    with the test that measured them."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    line = json.dumps(
        {
            "scenario": scenario,
            "promise": promise,
            "figures": figures,
            "test": test,
            "at": time.time(),
        }
    )
    print("FIGURES", line)
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")
