"""Per-connection limits: settings overrides, their validation, and the command rate
limiter (driven by a clock the test moves)."""

import pytest

from aether_compat.limits import Limits, RateLimiter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_defaults_and_overrides():
    limits = Limits.from_mapping({"commands_per_second": 5, "max_groups": 3})
    assert (limits.commands_per_second, limits.max_groups) == (5, 3)
    assert limits.max_frame_bytes == Limits().max_frame_bytes == 65536


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(TypeError, match="max_groups"):
        Limits.from_mapping({"max_group": 3})


@pytest.mark.parametrize("value", [0, -1, "10", True, None])
def test_limits_must_be_positive_numbers(value):
    with pytest.raises((TypeError, ValueError), match="max_frame_bytes"):
        Limits.from_mapping({"max_frame_bytes": value})


def test_burst_then_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take() for _ in range(4)] == ["ok", "ok", "ok", "limited"]
    clock.now += 0.5  # one token back at 2 per second
    assert [limiter.take(), limiter.take()] == ["ok", "limited"]


def test_refused_commands_beyond_the_burst_are_a_flood():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    verdicts = [limiter.take() for _ in range(7)]
    assert verdicts == ["ok"] * 3 + ["limited"] * 3 + ["flood"]


def test_strikes_drain_with_time():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(6):
        limiter.take()
    clock.now += 10
    assert [limiter.take() for _ in range(4)] == ["ok", "ok", "ok", "limited"]


@pytest.mark.parametrize("timeout", [10, 15])
def test_heartbeat_timeout_must_exceed_the_interval(timeout):
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        Limits.from_mapping({"heartbeat_interval": 15, "heartbeat_timeout": timeout})
