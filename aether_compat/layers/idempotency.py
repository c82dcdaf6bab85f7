"""Idempotency keys in one process: a key used for a target (a group or a channel)
is claimed for a window, and a second claim within it is refused, so a retried
task does not notify twice. The Redis layer claims in Redis instead
(`layers/redis/idempotency.py`), for every process at once."""

import hashlib
import threading
import time

DEFAULT_WINDOW = 300.0
"""Seconds a key stays claimed unless `AETHER_IDEMPOTENCY_WINDOW` says otherwise."""


def check_key(key: object) -> str:
    """The key, checked: a non-empty string of at most 200 characters."""
    if not isinstance(key, str) or not key or len(key) > 200:
        raise TypeError(
            f"idempotency_key must be a non-empty string of at most 200 "
            f"characters, got {key!r}"
        )
    return key


def digest(key: str) -> str:
    """A short fixed-length name for a key, safe in Redis key names."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class LocalClaims:
    """Claimed (target, key) pairs of this process, each until its deadline."""

    def __init__(self, clock: "type[time.monotonic] | None" = None) -> None:
        self._clock = clock or time.monotonic
        self._claims: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def claim(self, target: str, key: str, window: float) -> bool:
        """True the first time within `window` seconds, False for a repeat."""
        now = self._clock()
        with self._lock:
            if now >= self._next_prune:
                self._prune(now)
            deadline = self._claims.get((target, key))
            if deadline is not None and deadline > now:
                return False
            self._claims[(target, key)] = now + window
            return True

    def _prune(self, now: float) -> None:
        self._claims = {k: d for k, d in self._claims.items() if d > now}
        self._next_prune = now + 10.0
