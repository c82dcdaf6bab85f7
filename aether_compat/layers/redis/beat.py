"""The presence heartbeat of one Redis layer instance, on a daemon thread of its own
with a redis-py client that needs no event loop: a process that calls the layer
through `async_to_sync` (a fresh loop per call, as Django's sync views do) and then
works for a while stays alive in Redis all the same.

Each beat renews the live key; if it was gone (Redis restarted, or the process was
cut off longer than `presence_timeout`), a join failed to reach Redis, or it is time
to refresh the join times of members still in use (every `group_expiry / 3`), it
announces every membership again. Then it retries the discards Redis did not take,
at the backoff pace while Redis fails (never slower than the beat itself). The
thread starts on first use, ends with `finish()` (close, exit, SIGTERM: see
lifecycle.py), or when its layer is collected.
"""

import concurrent.futures
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from .config import COMMAND_TIMEOUT, Host
from .connections import Command, Tagged, group_by_host
from .presence import Presence, leave_steps
from .util import REDIS_FAILURES, backoff, logger, now_ms


class _Run:
    """One heartbeat thread's controls."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stop = False
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()


class Beat:
    """Keeps one instance's presence in Redis from a thread; see the module doc."""

    def __init__(
        self,
        hosts: Sequence[Host],
        presence: Presence,
        shard: Callable[[str], int],
        one_server: bool,
        live_check: Callable[[], Callable[[str], bool]],
        on_error: Callable[[BaseException], None],
        name: str | None = None,
    ) -> None:
        self._hosts = hosts
        self._name = name
        self._presence = presence
        self._shard = shard
        self._one_server = one_server
        self._live_check = live_check
        self._on_error = on_error
        self._clients: list[Any] | None = None
        self._run: _Run | None = None
        self._lock = threading.RLock()  # RLock: SIGTERM may land while it is held
        self._failures = 0
        self._refresh_s = presence.group_expiry_ms / 3000
        self._refreshed = time.monotonic()

    def ensure(self) -> None:
        """Start the thread unless it runs."""
        if self._run is not None:
            return
        with self._lock:
            if self._run is None:
                run = self._run = _Run()
                thread = threading.Thread(
                    target=_beat, args=(weakref.ref(self), run), daemon=True
                )
                thread.name = f"aether-presence-{self._presence.box}"
                thread.start()

    def poke(self) -> None:
        """A discard waits for Redis: try now rather than at the next beat."""
        self.ensure()
        run = self._run
        if run is not None:
            run.wake.set()

    def stop(self) -> "concurrent.futures.Future[None]":
        """Ask the thread to end; the future is done once it has."""
        with self._lock:
            run, self._run = self._run, None
        if run is None:
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        run.stop = True
        run.wake.set()
        return run.done

    def finish(self, timeout: float = COMMAND_TIMEOUT + 1) -> None:
        """Stop the thread, then take this process out of Redis at once (live key,
        memberships, pending discards). Blocking: for close(), exit and SIGTERM."""
        started = self._run is not None
        try:
            self.stop().result(timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("the presence thread did not stop within %s s", timeout)
        if not started:
            return
        try:
            for batch in self._presence.farewell():
                if batch:
                    self.execute(batch)
            self._leave_pending()
        except REDIS_FAILURES as exc:
            self._on_error(exc)
        finally:
            self._close_clients()

    # One beat, on the thread

    def step(self) -> float:
        """Renew, announce if needed, retry discards; seconds until the next beat."""
        presence = self._presence
        try:
            (renewed,) = self.execute(presence.alive(only_if_present=True))
            refresh = time.monotonic() - self._refreshed >= self._refresh_s
            if renewed is None or presence.dirty or refresh:
                presence.dirty = False
                self._announce(refresh, lost=renewed is None)
            self._leave_pending()
        except REDIS_FAILURES as exc:
            presence.dirty = True
            self._failures += 1
            self._on_error(exc)
            logger.warning("presence heartbeat failed: %r", exc)
            # Never slower than a normal beat: with a short presence_timeout a
            # 2 s backoff would let the live key expire once Redis is back.
            return min(backoff(self._failures), presence.interval)
        self._failures = 0
        return min(presence.interval, self._refresh_s)

    def _announce(self, refresh: bool, lost: bool) -> None:
        presence = self._presence
        if refresh:
            presence.refresh(self._live_check(), now_ms())
        try:
            self.execute(presence.announce(now_ms()))
        finally:
            presence.announced()
        if refresh:
            self._refreshed = time.monotonic()
        if lost:
            presence.reannounced += 1
            logger.info("re-announced %s groups", len(presence.memberships))

    def _leave_pending(self) -> None:
        """Retry every discard Redis has not confirmed (each only removes a member
        that joined before it was discarded)."""
        pending = self._presence.pending()
        if not pending:
            return
        prefix, one = self._presence.prefix, self._one_server
        steps = [leave_steps(prefix, m, at, True, one) for m, at in pending]
        firsts = self.execute([s[0] for s in steps])
        seconds = [
            s[1] for s, n in zip(steps, firsts, strict=True) if len(s) > 1 and n == 0
        ]
        if seconds:
            self.execute(seconds)
        self._presence.confirmed(pending)

    # Commands, with the synchronous clients

    def execute(self, tagged: Tagged) -> list[Any]:
        """Run the commands, one pipeline per host; results in order."""
        if self._clients is None:
            self._clients = [host.connect_sync(self._name) for host in self._hosts]
        clients = self._clients
        results: list[Any] = [None] * len(tagged)
        by_host = group_by_host(tagged, len(clients), self._shard)
        for host, indexes in by_host.items():
            done = run_sync(clients[host], [tagged[i][1] for i in indexes])
            for index, result in zip(indexes, done, strict=True):
                results[index] = result
        return results

    def _close_clients(self) -> None:
        clients, self._clients = self._clients, None
        for client in clients or ():
            with contextlib.suppress(*REDIS_FAILURES):  # it may have failed already
                client.close()


def _beat(ref: "weakref.ref[Beat]", run: _Run) -> None:
    """The thread: beat until stopped or until the layer is gone."""
    try:
        while not run.stop:
            beat = ref()
            if beat is None:
                return
            try:
                wait = beat.step()
            except Exception:  # a bug must not end presence: log, go on
                logger.exception("presence heartbeat crashed; retrying")
                wait = backoff(6)
            del beat
            run.wake.wait(wait)
            run.wake.clear()
    finally:
        run.done.set_result(None)


def run_sync(client: Any, commands: list[Command]) -> list[Any]:
    """`connections.run_batch` without an event loop: one pipeline, scripts by
    SHA (loaded if the server lost them), the first error raised."""
    pipe = client.pipeline(transaction=False)
    for item in commands:
        if item[0] is None:
            pipe.execute_command(*item[1:])
        else:
            lua, keys, args = item
            pipe.execute_command("EVALSHA", lua.sha, len(keys), *keys, *args)
    results = pipe.execute(raise_on_error=False)
    for index, result in enumerate(results):
        if isinstance(result, NoScriptError):
            lua, keys, args = commands[index]
            client.script_load(lua.source)
            results[index] = client.evalsha(lua.sha, len(keys), *keys, *args)
        elif isinstance(result, Exception):
            raise result
    return results
