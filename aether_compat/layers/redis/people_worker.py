"""The presence worker of one Redis layer instance, a task on an event loop:

- batching: the changes this process learnt of (from its joins, leaves and
  sweeps) go out per group as one `aether.presence_diff` per DIFF_WINDOW;
- sweeping, every SWEEP_SECONDS, of the presence-events groups this instance has
  members in: one cheap script per group says whether a leave is due and which
  boxes have connections there; boxes whose live key is gone (a crashed process)
  and due leaves are settled by one atomic script, so exactly one process
  announces each; a group where Redis holds another count of this instance's
  connections than it made (Redis lost them, or a join or leave did not reach
  it) gets them written again, stale ones leaving.

The task runs on the loop of the join that needed it, and starts again on the
next join's loop if that loop closed.
"""

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ...presence import DIFF_WINDOW, PRESENCE_DIFF
from .. import codec
from .connections import Connections, command, script
from .keys import box_base, group_tag
from .people_scripts import PEEK, SETTLE
from .people_values import group_base
from .util import REDIS_FAILURES, backoff, logger, now_ms

if TYPE_CHECKING:
    from .people import People

SWEEP_SECONDS = 0.5
Deliver = Callable[[str, dict[str, Any], list[str]], Awaitable[Any]]


class Change(NamedTuple):
    """One announced change: "+" join or "-" leave of `key`, its number, meta."""

    sign: str
    key: str
    seq: int
    meta: bytes


class Worker:
    """Batches diffs and sweeps groups; see the module doc."""

    def __init__(self, prefix: str, box: str, connections: Connections) -> None:
        self.prefix = prefix
        self.box = box
        self.people: People | None = None
        self.deliver: Deliver | None = None
        self._connections = connections
        self._lock = threading.Lock()
        self._changes: dict[str, list[Change]] = {}
        self._joiners: dict[str, dict[str, int]] = {}  # group -> channel -> its _seq
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._failures = 0

    def ensure(self) -> None:
        """Run the task on this loop unless it runs on a live one."""
        task = self._task
        if task is not None and not task.done() and not task.get_loop().is_closed():
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="aether-presence")

    def queue(self, group: str, changes: list[Change], joiner: Any) -> None:
        """Changes to announce (and the joining channel with its state's number)."""
        if not changes and joiner is None:
            return
        with self._lock:
            if changes:
                self._changes.setdefault(group, []).extend(changes)
            if joiner is not None and group in self._changes:  # else no diff to skip
                self._joiners.setdefault(group, {})[joiner[0]] = joiner[1]
        task, wake = self._task, self._wake
        if changes and task is not None and wake is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # its loop closed
                task.get_loop().call_soon_threadsafe(wake.set)

    async def stop(self, flush: bool) -> None:
        """End the task; with `flush`, send what waits first."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            if task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:  # another thread's loop: cancel it there
                with contextlib.suppress(RuntimeError):  # that loop closed
                    task.get_loop().call_soon_threadsafe(task.cancel)
        if flush:
            await self.flush()
        else:
            with self._lock:
                self._changes.clear()
                self._joiners.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + SWEEP_SECONDS
        wake = self._wake or asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                    await wake.wait()
            wake.clear()
            if self._changes:
                await asyncio.sleep(DIFF_WINDOW)  # the batching window itself
                await self.flush()
            if loop.time() >= next_sweep:
                wait = await self._sweep_safely()
                next_sweep = loop.time() + wait

    # Batching

    async def flush(self) -> None:
        """Send one diff per group with what waits."""
        with self._lock:
            changes, self._changes = self._changes, {}
            joiners, self._joiners = self._joiners, {}
        for group, found in changes.items():
            event, top = diff_event(group, found)
            exclude = [c for c, s in joiners.get(group, {}).items() if s >= top]
            if self.deliver is not None:
                try:
                    await self.deliver(group, event, exclude)
                except Exception:  # one group's failure must not stop the others
                    logger.exception("presence diff for %s not sent", group)

    # Sweeping

    async def _sweep_safely(self) -> float:
        try:
            await self.sweep()
        except REDIS_FAILURES as exc:
            self._failures += 1
            logger.warning("presence sweep failed: %r", exc)
            return max(SWEEP_SECONDS, backoff(self._failures))
        self._failures = 0
        return SWEEP_SECONDS

    async def sweep(self) -> None:
        """Settle due leaves and dead processes' connections, and write this
        instance's connections again where Redis does not hold them all."""
        people = self.people
        if people is None:
            return
        groups = [g for g in people.groups() if people.events(g)]
        if not groups:
            return
        now = now_ms()
        touched = {g: people.touched.get(g) for g in groups}
        peeks = [
            (
                group_tag(g),
                script(
                    PEEK,
                    [group_base(self.prefix, g) + "pc"],
                    [group_base(self.prefix, g), now],
                ),
            )
            for g in groups
        ]
        found = await self._connections.execute(peeks)
        boxes = {
            b.decode()
            for _, flat in found
            for b in flat[::2]
            if b.startswith(b"p.") and b.decode() != self.box
        }
        dead = await self._dead(sorted(boxes))
        work = []
        for group, (due, flat) in zip(groups, found, strict=True):
            counts = {
                flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)
            }
            gone = [b for b in counts if b in dead]
            if due or gone:
                base = group_base(self.prefix, group)
                args = [base, now, str(now * 1000), 1, *gone]
                lua = script(SETTLE, [base + "pc"], args)
                work.append((group, (group_tag(group), lua), None))
            pairs, unconfirmed = people.own_pairs(group)
            quiet = people.touched.get(group) == touched[group]
            if quiet and counts.get(self.box, 0) != len(pairs):
                lua = people.join_command(
                    group, people.options_of(group), pairs, own=self.box
                )
                work.append((group, (group_tag(group), lua), unconfirmed))
        if work:
            results = await self._connections.execute([w[1] for w in work])
            for (group, _, repaired), result in zip(work, results, strict=True):
                if repaired:  # the repair took this box's other fields out
                    people.confirm(group, repaired)
                flat = result[0] if result and isinstance(result[0], list) else result
                self.queue(group, changes_of(flat), None)
        if people.owed:
            await people.send_owed()

    async def prune(self, group: str, boxes: list[str], events: bool) -> None:
        """Take out the connections of those `boxes` that are dead (a reader
        found them; groups without presence events have no sweep)."""
        try:
            dead = sorted(await self._dead(boxes))
            if not dead:
                return
            base, now = group_base(self.prefix, group), now_ms()
            args = [base, now, str(now * 1000), int(events), *dead]
            lua = script(SETTLE, [base + "pc"], args)
            (flat,) = await self._connections.execute([(group_tag(group), lua)])
        except REDIS_FAILURES as exc:  # the answer stands; the next read retries
            logger.warning("presence prune of %s failed: %r", group, exc)
            return
        if flat:
            self.ensure()
            self.queue(group, changes_of(flat), None)

    async def _dead(self, boxes: list[str]) -> set[str]:
        if not boxes:
            return set()
        checks = [
            (box, command("EXISTS", box_base(self.prefix, box) + "l")) for box in boxes
        ]
        alive = await self._connections.execute(checks)
        return {box for box, live in zip(boxes, alive, strict=True) if not live}


def changes_of(flat: list[Any]) -> list[Change]:
    """The changes a presence script returned (sign, key, seq, meta)."""
    return [
        Change(flat[i].decode(), flat[i + 1].decode(), int(flat[i + 2]), flat[i + 3])
        for i in range(0, len(flat), 4)
    ]


def diff_event(group: str, changes: list[Change]) -> tuple[dict[str, Any], int]:
    """The diff of `changes` (later ones of a key and sign win), and its top number."""
    joins: dict[str, list[Any]] = {}
    leaves: dict[str, list[Any]] = {}
    seqs: dict[str, int] = {}
    for change in sorted(changes, key=lambda c: c.seq):
        target = joins if change.sign == "+" else leaves
        target[change.key] = [codec.decode(change.meta) if change.meta else {}]
        seqs[change.sign + change.key] = change.seq
    event = {
        "type": PRESENCE_DIFF,
        "group": group,
        "joins": joins,
        "leaves": leaves,
        "_seqs": seqs,
    }
    return event, max(seqs.values(), default=0)
