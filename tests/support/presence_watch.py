"""Chat pages as the presence acceptance tests see them: an `aether.v1` chat socket
(a LightClient, so a thousand fit in one process) that keeps what its room's
presence frames told it (the state, every diff with its arrival time, the member
map they add up to, the bytes each kind of frame cost), and signed-in sessions made
without a login form (a thousand logins would spend minutes on password hashing)."""

import asyncio
import bisect
import contextlib
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from testing_support.asgi_server import ROOT, project_env
from tests.support.light_client import LightClient

V1 = "aether.v1"
STATE = "aether.presence_state"
DIFF = "aether.presence_diff"

_SESSIONS = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
out = {}
for name in NAMES:
    user, made = get_user_model().objects.get_or_create(username=name)
    if made:
        user.set_unusable_password()
        user.save()
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    out[name] = session.session_key
print(json.dumps(out))
"""


def signed_in_cookies(db_path: Path, names: list[str]) -> dict[str, str]:
    """A `Cookie` header per username, of a session signed in as that user (made
    if missing) in the demo database at `db_path`."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", f"NAMES = {names!r}" + _SESSIONS],
        cwd=ROOT,
        env=project_env(db_path),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    keys = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: f"sessionid={key}" for name, key in keys.items()}


class Member:
    """One chat socket of room `group` and what its presence frames said."""

    def __init__(self, group: str, name: str = "") -> None:
        self.group = group
        self.name = name  # the test's label; the page's name comes in chat.welcome
        self.client = LightClient(on_text=self._frame)
        self.state: dict[str, list[dict[str, Any]]] | None = None
        self.members: dict[str, list[dict[str, Any]]] = {}
        self.diffs: list[tuple[float, dict[str, Any]]] = []
        self.chat_frames = 0
        self.frames = 0  # every frame but pings (they come while stuck too): progress
        self.errors: list[dict[str, Any]] = []  # aether.error replies
        self.bytes: Counter[str] = Counter()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def open(
        self, port: int, cookie: str | None = None, within: float = 10
    ) -> "Member":
        room = self.group.removeprefix("room:")
        await self.client.connect(
            port, f"/ws/chat/{room}/", cookie=cookie, protocol=V1, within=within
        )
        return self

    async def joined(self, within: float = 10) -> "Member":
        """Wait for this socket's presence state (it is in the room)."""
        await self.until(lambda: self.state is not None, within)
        return self

    async def close(self) -> None:
        await self.client.close()

    # What it was told

    def keys_named(self, name: str) -> set[str]:
        """Keys of the entries whose metadata carries display name `name`, in the
        state and every diff."""
        entries = [self.state or {}]
        entries += [d["joins"] for _, d in self.diffs]
        entries += [d["leaves"] for _, d in self.diffs]
        return {
            key
            for entry in entries
            for key, metas in entry.items()
            if any(meta.get("name") == name for meta in metas)
        }

    def joins_of(self, key: str, since: float = 0.0) -> int:
        return sum(1 for at, d in self.diffs if at >= since and key in d["joins"])

    def leaves_of(self, key: str, since: float = 0.0) -> int:
        return sum(1 for at, d in self.diffs if at >= since and key in d["leaves"])

    def diffs_since(self, since: float) -> list[dict[str, Any]]:
        return [d for at, d in self.diffs if at >= since]

    def first_leave_at(self, key: str) -> float | None:
        return next((at for at, d in self.diffs if key in d["leaves"]), None)

    @property
    def diff_stamps(self) -> list[float]:
        """When each diff frame arrived (monotonic), in order."""
        return [at for at, _ in self.diffs]

    def peak_diffs_per_second(self) -> int:
        """The most diff frames that arrived within any one second."""
        return max((n for n, _, _ in seconds_of(self.diff_stamps)), default=0)

    async def until(self, predicate: Callable[[], bool], within: float) -> None:
        """Wait until `predicate()` holds, checked on every frame."""
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(within):
                await future
        except TimeoutError:
            raise AssertionError(
                f"{self.name or 'a member'} of {self.group} waited {within} s in "
                f"vain; it holds {len(self.members)} members, {len(self.diffs)} "
                f"diffs, {self.chat_frames} chat frames, errors {self.errors[-3:]}"
                + (
                    f"; its socket closed (code {self.client.close_code})"
                    if self.client.closed.is_set()
                    else ""
                )
            ) from None
        finally:
            self._waiters.remove(entry)

    def _frame(self, data: bytes) -> None:
        frame = json.loads(data)
        kind = frame.get("type", "")
        self.frames += kind != "aether.ping"
        self.bytes[kind] += len(data)
        ours = frame.get("group") == self.group
        if ours and kind == STATE:
            self.state = frame["presence"]
            self.members = {key: list(metas) for key, metas in self.state.items()}
        elif ours and kind == DIFF:
            self.diffs.append((time.monotonic(), frame))
            for key in frame["leaves"]:
                self.members.pop(key, None)
            for key, metas in frame["joins"].items():
                self.members[key] = list(metas)
        elif ours and kind == "aether.message":
            self.chat_frames += 1
        elif kind == "aether.error":
            self.errors.append(frame)
        elif kind == "aether.ping" and not self.client.closed.is_set():
            self.client.send_text('{"action": "pong"}')  # as aether.js does
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)


async def open_members(
    ports: list[int],
    group: str,
    count: int,
    *,
    cookies: list[str | None] | None = None,
    at_once: int = 100,
    within: float = 60,
) -> tuple[list[Member], float]:
    """`count` members of `group`, spread round-robin over the servers on `ports`,
    opened `at_once` at a time (the test process's share of two cores caps the
    handshake rate); the members and the seconds the handshakes took in all."""
    gate = asyncio.Semaphore(at_once)
    members = [Member(group, f"member-{n}") for n in range(count)]

    async def open_one(n: int) -> None:
        async with gate:
            cookie = cookies[n] if cookies else None
            await members[n].open(ports[n % len(ports)], cookie, within=within)

    started = time.monotonic()
    await asyncio.gather(*(open_one(n) for n in range(count)))
    return members, time.monotonic() - started


async def all_until(
    members: list[Member], predicate: Callable[[Member], bool], within: float
) -> None:
    """Wait until `predicate(member)` holds for every member."""
    await asyncio.gather(*(m.until(lambda m=m: predicate(m), within) for m in members))


async def all_until_progressing(
    members: list[Member],
    predicate: Callable[[Member], bool],
    stall: float,
    cap: float = 600,
) -> None:
    """`all_until` for work whose pace is the machine's (a thousand joins on two
    shared cores): fails once no member got any frame for `stall` seconds, or
    after `cap` seconds, not at a fixed time while frames still flow."""
    deadline = time.monotonic() + cap
    for member in members:
        while True:
            seen = sum(m.frames for m in members)
            try:
                await member.until(lambda m=member: predicate(m), stall)
                break
            except AssertionError:
                stalled = sum(m.frames for m in members) == seen
                if stalled or time.monotonic() > deadline:
                    raise


class LoopLag:
    """When and how late this process's event loop ran a 10 ms timer while it was
    watched. A frame that came in during a busy stretch is stamped when the
    stretch ends, so frames written DIFF_WINDOW apart can seem closer."""

    TICK = 0.01

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (fired at, how late)
        self.worst = 0.0
        self._fired: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "LoopLag":
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fired = [at for at, _ in self.samples]
        self.worst = max((late for _, late in self.samples), default=0.0)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + self.TICK
            await asyncio.sleep(self.TICK)  # a clock to be late to, not a wait
            now = loop.time()
            self.samples.append((time.monotonic(), now - planned))

    def late_during(self, start: float, end: float) -> float:
        """The longest busy stretch that touched [start, end] (monotonic), once
        the watch ended."""
        low = bisect.bisect_left(self._fired, start)
        high = bisect.bisect_right(self._fired, end + self.worst + self.TICK)
        return max(
            (
                late
                for at, late in self.samples[low:high]
                if at - late - self.TICK <= end
            ),
            default=0.0,
        )

    def excess(self, stamps: list[float], per_second: int, window: float) -> int:
        """How many more frames than `per_second` (written at least `window`
        apart) any one second of `stamps` holds, beyond what the loop's busy
        stretches in that second could bunch up; 0 or less when none."""
        worst = -per_second
        for count, start, end in seconds_of(stamps):
            allowed = per_second + math.ceil(self.late_during(start, end) / window)
            worst = max(worst, count - allowed)
        return worst


def seconds_of(stamps: list[float]) -> Iterator[tuple[int, float, float]]:
    """For each stamp, the stamps within the second up to it: (how many, the
    first's time, its own time)."""
    first = 0
    for last, at in enumerate(stamps):
        while at - stamps[first] >= 1.0:
            first += 1
        yield last - first + 1, stamps[first], at
