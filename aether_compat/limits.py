"""Per-connection limits of `AetherConsumer`: their defaults, the close codes used
when one is broken badly, and the command rate limiter.

Settings: `AETHER_WEBSOCKET_LIMITS = {"commands_per_second": 50, ...}` overrides any
field of `Limits`; docs/settings.md lists every field with its default.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Self

# Close codes are 4000 + the RFC 6455 code they mean: servers such as daphne refuse
# to send 1008/1009/1013 from an application (only 1000 and 3000-4999 may be sent).

CLOSE_HEARTBEAT = 4001
"""Going away: an `aether.v1` client sent nothing for `heartbeat_timeout` seconds."""

CLOSE_REVOKED = 4003
"""Forbidden: the user's rights changed (logout, password change, deactivation, a
lost permission) or the application disconnected the connection."""

CLOSE_FLOOD = 4008
"""Policy violation: the client kept sending commands far beyond its rate limit."""

CLOSE_FRAME_TOO_BIG = 4009
"""Message too big: one frame exceeded `close_frame_bytes`."""

CLOSE_LIFETIME = 4012
"""Service restart: the connection reached `max_lifetime_seconds`; the client
reconnects at once, with the rights its user has then."""

CLOSE_SLOW_CONSUMER = 4013
"""Try again later: the client stopped reading and `outbound_limit_bytes` filled."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one WebSocket connection may do; every field can be set in settings."""

    max_frame_bytes: int = 64 * 1024
    """Larger command frames get an `aether.error` (`frame_too_large`)."""
    close_frame_bytes: int = 512 * 1024
    """Larger frames close the connection with 4009. (daphne drops connections
    whose frames exceed its own 1 MiB cap before the application sees them.)"""
    max_groups: int = 100
    """Groups one connection may be in; one more join gets `too_many_groups`."""
    commands_per_second: float = 20.0
    """Sustained command rate; beyond it commands get `rate_limited`."""
    command_burst: int = 40
    """Commands accepted at once before the rate applies; refused commands beyond
    this many in a row (less what the rate forgives) close the socket with 4008."""
    outbound_limit_bytes: int = 1024 * 1024
    """Bytes waiting in the server for a client to read; beyond it deliveries to that
    client fail (counted in `SendResult`)."""
    outbound_grace_seconds: float = 2.0
    """How long a client may stay beyond `outbound_limit_bytes` before it is closed
    with 4013."""
    heartbeat_interval: float = 15.0
    """Seconds of silence from an `aether.v1` client before the server sends it
    `aether.ping` (and again every interval while the silence lasts)."""
    rights_check_seconds: float = 60.0
    """How often a logged-in connection re-reads its user: one that is gone or
    inactive, changed its password or lost a group's permission is closed with
    4003 within this time (a logout closes its sockets at once)."""
    heartbeat_timeout: float = 30.0
    """Seconds of silence after which an `aether.v1` connection leaves its groups
    and is closed with 4001; must exceed `heartbeat_interval`."""
    max_lifetime_seconds: float = math.inf
    """Optional: a connection open this long (less up to 10 %, so that connections
    opened together do not all reconnect together) leaves its groups and is closed
    with 4012; its client reconnects with fresh rights. No limit by default."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"AETHER_WEBSOCKET_LIMITS[{field.name!r}] must be a number, "
                    f"got {value!r}"
                )
            if value <= 0:
                raise ValueError(
                    f"AETHER_WEBSOCKET_LIMITS[{field.name!r}] must be positive, "
                    f"got {value!r}"
                )
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError(
                "AETHER_WEBSOCKET_LIMITS['heartbeat_timeout'] must exceed "
                f"heartbeat_interval ({self.heartbeat_interval!r}), so a client "
                f"gets a ping before it is closed; got {self.heartbeat_timeout!r}"
            )

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None) -> Self:
        """The defaults with `overrides` applied; an unknown key raises `TypeError`
        listing the known ones, so a typo in settings does not pass unnoticed."""
        overrides = dict(overrides or {})
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"AETHER_WEBSOCKET_LIMITS has unknown key(s) {unknown}; "
                f"known keys: {sorted(known)}"
            )
        return replace(cls(), **overrides)


_shared: list[tuple[dict[str, Any], Limits]] = []


def limits_for(overrides: Mapping[str, Any] | None) -> Limits:
    """`Limits.from_mapping(overrides)`, one instance shared by every connection
    while the settings stay equal (limits are frozen): ten thousand connections
    hold one `Limits`, not ten thousand copies."""
    current = dict(overrides or {})
    if _shared and _shared[0][0] == current:
        return _shared[0][1]
    limits = Limits.from_mapping(current)
    _shared[:] = [(current, limits)]
    return limits


Verdict = Literal["ok", "limited", "flood"]


class RateLimiter:
    """A token bucket for one connection's commands.

    `take()` says whether a command may run now. Refused commands add a strike;
    strikes drain at the command rate, and more than `burst` of them is a flood.
    """

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_strikes", "_tokens")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._strikes = 0.0
        self._last = clock()

    def take(self) -> Verdict:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._strikes = max(0.0, self._strikes - elapsed * self._rate)
        if self._tokens >= 1:
            self._tokens -= 1
            return "ok"
        self._strikes += 1
        return "flood" if self._strikes > self._burst else "limited"
