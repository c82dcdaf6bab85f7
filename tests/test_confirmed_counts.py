"""Counts across OS processes: with `confirm`, a member in another process counts as
sent only once its process said it handed the message on, so members of a killed
process, and sessions there that hang or raise, come back as named failures within
the deadline; without it, a killed process's members fail within presence_timeout
and are never counted as sent once the layer knows."""

import asyncio
import multiprocessing
import os
import signal
import time
import uuid

import pytest

from aether_compat import Channels, MemberUnreachable, SessionSendFailed
from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL

pytestmark = pytest.mark.redis

GROUP = "room:confirm"
PRESENCE_TIMEOUT = 2


def run_members(prefix: str, kinds: list[str], conn) -> None:
    asyncio.run(_members(prefix, kinds, conn))


async def _members(prefix, kinds, conn):
    """The other process: one session per kind in GROUP ('ok' takes messages,
    'hang' never returns, 'raise' raises; 'plain' is a receive() channel)."""
    layer = RedisChannelLayer(
        hosts=[REDIS_URL],
        prefix=prefix,
        presence_timeout=PRESENCE_TIMEOUT,
        delivery_timeout=0.5,
    )

    async def ok(message):
        pass

    async def hang(message):
        await asyncio.Event().wait()

    async def fail(message):
        raise RuntimeError("the socket is gone")

    senders = {"ok": ok, "hang": hang, "raise": fail}
    channels, readers = [], []
    for kind in kinds:
        channel = await layer.new_channel()
        if kind in senders:
            await layer.register_session(channel, senders[kind])
        else:
            readers.append(asyncio.ensure_future(_read_forever(layer, channel)))
        await layer.group_add(GROUP, channel)
        channels.append(channel)
    conn.send(channels)
    await asyncio.Event().wait()


async def _read_forever(layer, channel):
    while True:
        await layer.receive(channel)


@pytest.fixture
def start_members():
    """Start a member process with sessions of the given kinds; yields a starter
    returning (prefix, process, channels). Every process is killed at the end."""
    started = []

    async def start(kinds):
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        parent, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        process = context.Process(target=run_members, args=(prefix, kinds, child))
        process.start()
        started.append((prefix, process))
        assert await asyncio.to_thread(parent.poll, 30), "the members never started"
        return prefix, process, parent.recv()

    yield start
    for prefix, process in started:
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        asyncio.run(_flush(prefix))


async def _flush(prefix):
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    await layer.flush()
    await layer.close()


async def test_confirmed_counts_a_killed_process_as_failed_in_time(start_members):
    prefix, process, channels = await start_members(["ok", "ok", "plain"])
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        alive = await layer.group_send(GROUP, {"type": "x"}, confirm=1.0)
        assert (alive.sent_count, alive.failed_count) == (3, 0)
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        started = time.monotonic()
        dead = await layer.group_send(GROUP, {"type": "x"}, confirm=1.0)
        assert time.monotonic() - started < 1.5
        assert (dead.sent_count, dead.failed_count) == (0, 3)
        assert {error.channel for error in dead.errors} == set(channels)
        assert all(isinstance(error, MemberUnreachable) for error in dead.errors)
    finally:
        await layer.close()


async def test_unconfirmed_never_counts_a_known_gone_process_as_sent(start_members):
    """Without confirmation the members of a killed process count as sent until
    presence_timeout shows they are gone, as failures then, and never again."""
    prefix, process, channels = await start_members(["ok", "ok"])
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        killed = time.monotonic()
        async with asyncio.timeout(PRESENCE_TIMEOUT + 1):
            while True:
                result = await layer.group_send(GROUP, {"type": "x"})
                if result.failed_count:
                    break
                assert result.sent_count == 2
                await asyncio.sleep(0.05)  # presence expiry is the clock under test
        assert time.monotonic() - killed <= PRESENCE_TIMEOUT + 1
        assert {error.channel for error in result.errors} == set(channels)
        for _ in range(5):
            later = await layer.group_send(GROUP, {"type": "x"})
            assert later.sent_count == 0
    finally:
        await layer.close()


async def test_confirmed_names_a_hanging_and_a_raising_session(start_members):
    """Sessions in the other process that hang or raise come back as failures
    naming them; the healthy members there count as sent."""
    prefix, _, (_, hanging, raising, _) = await start_members(
        ["ok", "hang", "raise", "plain"]
    )
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    Channels.configure(layer)
    try:
        result = await Channels.group(GROUP).broadcast("hi", confirm=2.0)
        assert (result.sent_count, result.failed_count) == (2, 2)
        by_channel = {error.channel: error for error in result.errors}
        assert set(by_channel) == {hanging, raising}
        assert all(isinstance(e, SessionSendFailed) for e in by_channel.values())
        assert "socket is gone" in str(by_channel[raising])
        assert "did not return" in str(by_channel[hanging])
        unconfirmed = await Channels.group(GROUP).broadcast("hi")
        assert (unconfirmed.sent_count, unconfirmed.failed_count) == (4, 0)
    finally:
        await layer.close()


async def test_confirm_is_checked_and_works_in_memory(make_layer):
    layer = make_layer()
    with pytest.raises(TypeError, match="confirm must be"):
        await layer.group_send("g", {"type": "x"}, confirm="soon")
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    result = await layer.group_send("g", {"type": "x"}, confirm=True)
    assert (result.sent_count, result.failed_count) == (1, 0)
