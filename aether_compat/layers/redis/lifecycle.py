"""How Redis layer instances follow their process's life:

- fork: a child process (os.fork, multiprocessing's "fork" start method, pre-fork
  servers) gets a new identity for every instance, so parent and child never share
  an inbox, a live key or channel names;
- exit: when the interpreter exits normally (`atexit`: a daphne or uvicorn server
  stopped by SIGTERM or SIGINT shuts down this way), every instance takes its
  members out of Redis at once, instead of after `presence_timeout`;
- SIGTERM in a process that does not handle it (Python's default is to die on the
  spot, with no `atexit`): call `leave_on_sigterm()` once at startup (a worker's
  main, a management command) and SIGTERM takes the members out first, then goes
  on to whatever handled SIGTERM before.

`Readers` counts the receives under way per channel: a channel being received on
is alive, and its memberships keep fresh join times (see presence.py).
"""

import atexit
import os
import signal
import threading
import weakref
from collections import Counter
from typing import Any

_layers: "weakref.WeakSet[Any]" = weakref.WeakSet()
EXIT_SECONDS = 2.0


def track(layer: Any) -> None:
    """Follow `layer` through forks and exit (it has `_after_fork_in_child()` and
    `leave_now(timeout)`)."""
    _layers.add(layer)


def _instances() -> list[Any]:
    for _ in range(3):  # another thread may add one while we copy
        try:
            return list(_layers)
        except RuntimeError:
            continue
    return []


def _after_fork_in_child() -> None:
    for layer in _instances():
        layer._after_fork_in_child()


def leave_now() -> None:
    """Take every Redis layer instance of this process out of Redis now: live keys
    deleted, memberships removed, heartbeats stopped (blocking; a later use of an
    instance announces it again)."""
    for layer in _instances():
        layer.leave_now(EXIT_SECONDS)


def leave_on_sigterm() -> None:
    """On SIGTERM, take this process's members out of Redis at once, then do what
    SIGTERM did before (by default: terminate). Call it from the main thread."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        leave_now()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(leave_now)


class Readers:
    """Channels with a `receive()` under way, and those seen since the last look."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: Counter[str] = Counter()
        self._seen: set[str] = set()

    def enter(self, channel: str) -> None:
        with self._lock:
            self._now[channel] += 1
            self._seen.add(channel)

    def leave(self, channel: str) -> None:
        with self._lock:
            self._now[channel] -= 1
            if self._now[channel] <= 0:
                del self._now[channel]

    def snapshot(self) -> set[str]:
        """Channels received on now or since the previous snapshot."""
        with self._lock:
            seen, self._seen = self._seen, set()
            return seen | set(self._now)
