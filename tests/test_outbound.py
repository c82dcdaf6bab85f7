"""The outbound gauge per server and the limit applied to it (`outbound.py`); the
servers themselves are exercised end to end (test_slow_consumers, test_e2e)."""

import logging

import pytest

from aether_compat import outbound
from aether_compat.outbound import OutboundGauge, OutboundLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Buffer:
    """What the buffer gauge reads: queued bytes and when the blocked write began."""

    queued_bytes = 0
    blocked_since: float | None = None


@pytest.fixture(autouse=True)
def fresh_announcements(monkeypatch):
    monkeypatch.setattr(outbound, "_announced", set())


async def unknown_server_send(message):
    """An ASGI `send` of a server aether_compat does not know."""


def test_an_unknown_server_is_named_once_in_a_warning(caplog):
    caplog.set_level(logging.INFO, "aether_compat")
    for _ in range(3):
        gauge = OutboundGauge.for_send(unknown_server_send, Buffer())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'tests' is neither daphne nor a server known" in warnings[0].getMessage()
    assert gauge.kind == "buffer"


def test_a_backpressure_server_is_recognised_by_its_package(caplog):
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )

    caplog.set_level(logging.INFO, "aether_compat")
    send = WebSocketsSansIOProtocol.send.__get__(
        object.__new__(WebSocketsSansIOProtocol)
    )
    OutboundGauge.for_send(send, Buffer())
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "uvicorn: bytes queued behind a blocked send" in caplog.text


def limit_on(buffer: Buffer, clock: Clock) -> OutboundLimit:
    gauge = OutboundGauge(
        lambda: buffer.queued_bytes, lambda: buffer.blocked_since, "buffer"
    )
    return OutboundLimit(gauge, limit_bytes=1000, grace_seconds=2.0, clock=clock)


def test_a_frame_that_would_pass_the_limit_is_refused():
    buffer, clock = Buffer(), Clock()
    limit = limit_on(buffer, clock)
    buffer.queued_bytes = 900
    assert limit.admit(100) is None
    assert limit.admit(101) == 900


def test_a_write_blocked_past_the_grace_is_overdue_without_any_new_frame():
    buffer, clock = Buffer(), Clock()
    limit = limit_on(buffer, clock)
    assert limit.due_in() is None
    buffer.blocked_since = clock.now
    clock.now += 1.5
    assert limit.due_in() == pytest.approx(0.5)
    assert not limit.overdue()
    clock.now += 0.5
    assert limit.overdue()


def test_refused_ever_since_the_first_refusal_past_the_grace_is_overdue():
    buffer, clock = Buffer(), Clock()
    limit = limit_on(buffer, clock)
    buffer.queued_bytes, buffer.blocked_since = 1000, clock.now
    limit.admit(10)
    clock.now += 1.0
    buffer.blocked_since = clock.now  # writes go on, slower than the broadcasts
    limit.admit(10)
    clock.now += 1.0
    assert limit.admit(10) is not None
    assert limit.overdue()


def test_a_client_that_caught_up_is_not_overdue():
    buffer, clock = Buffer(), Clock()
    limit = limit_on(buffer, clock)
    buffer.queued_bytes, buffer.blocked_since = 1000, clock.now
    limit.admit(10)
    buffer.queued_bytes, buffer.blocked_since = 0, None  # its queue drained
    clock.now += 5
    limit.recheck()
    assert not limit.overdue()
    assert limit.due_in() is None


def test_daphne_style_backlog_beyond_the_limit_stays_behind_until_read():
    backlog, clock = [5000], Clock()
    gauge = OutboundGauge(lambda: backlog[0], kind="twisted")
    limit = OutboundLimit(gauge, limit_bytes=1000, grace_seconds=2.0, clock=clock)
    assert limit.admit(10) == 5000
    clock.now += 2
    limit.recheck()
    assert limit.overdue()
    backlog[0] = 0
    limit.recheck()
    assert not limit.overdue()
