"""Heartbeats share one timer per event loop (`heartbeat.py`): a silent client is
pinged after the interval and shut after the timeout, a heard client is not,
a stopped heartbeat never calls back, and many heartbeats hold one timer."""

import asyncio
import time

from aether_compat.heartbeat import Heartbeat
from aether_compat.limits import CLOSE_HEARTBEAT


class Calls:
    """What a heartbeat called, with a future per kind of call."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.pings: list[float] = []
        self.shut: asyncio.Future[int] = loop.create_future()
        self.pinged: asyncio.Future[None] = loop.create_future()

    def ping(self) -> None:
        self.pings.append(time.monotonic())
        if not self.pinged.done():
            self.pinged.set_result(None)

    def close(self, code: int) -> None:
        self.shut.set_result(code)


async def test_a_silent_client_is_pinged_then_shut_after_the_timeout():
    calls = Calls()
    started = time.monotonic()
    Heartbeat(0.05, 0.3, calls.ping, calls.close).start()
    assert await asyncio.wait_for(calls.shut, 5) == CLOSE_HEARTBEAT
    assert time.monotonic() - started >= 0.3
    assert len(calls.pings) >= 2  # again every interval while the silence lasts
    assert calls.pings[0] - started >= 0.05


async def test_a_heard_client_is_not_pinged_before_an_interval_of_silence():
    calls = Calls()
    beat = Heartbeat(0.2, 5.0, calls.ping, calls.close)
    beat.start()
    await asyncio.sleep(0.15)  # the clock is the subject
    beat.heard()
    heard_at = time.monotonic()
    await asyncio.wait_for(calls.pinged, 5)
    assert calls.pings[0] - heard_at >= 0.2 - 0.01
    beat.stop()


async def test_a_stopped_heartbeat_never_calls_back():
    stopped, running = Calls(), Calls()
    beat = Heartbeat(0.05, 0.2, stopped.ping, stopped.close)
    beat.start()
    beat.stop()
    Heartbeat(0.05, 0.2, running.ping, running.close).start()  # due after it
    await asyncio.wait_for(running.shut, 5)
    assert stopped.pings == []
    assert not stopped.shut.done()


async def test_ten_thousand_heartbeats_hold_one_timer_and_no_task():
    loop = asyncio.get_running_loop()
    tasks, timers = len(asyncio.all_tasks()), len(loop._scheduled)
    calls = Calls()
    beats = [Heartbeat(30.0, 60.0, calls.ping, calls.close) for _ in range(10_000)]
    for beat in beats:
        beat.start()
    assert len(asyncio.all_tasks()) == tasks
    assert len(loop._scheduled) <= timers + 1
    for beat in beats:
        beat.stop()


async def test_a_failing_callback_is_reported_and_spares_the_others():
    loop = asyncio.get_running_loop()
    reported: asyncio.Future[dict] = loop.create_future()
    loop.set_exception_handler(lambda _, context: reported.set_result(context))

    def broken() -> None:
        raise RuntimeError("boom")

    calls = Calls()
    Heartbeat(0.05, 5.0, broken, calls.close).start()
    Heartbeat(0.05, 5.0, calls.ping, calls.close).start()
    context = await asyncio.wait_for(reported, 5)
    assert isinstance(context["exception"], RuntimeError)
    await asyncio.wait_for(calls.pinged, 5)
