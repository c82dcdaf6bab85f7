"""Idempotency keys: a repeated key to the same group or channel within the window
is not delivered again, and its result says it was a duplicate; on Redis this
holds across processes."""

import asyncio
import multiprocessing
import os
import uuid
from typing import Any

import pytest

from aether_compat import Channels, SendResult
from aether_compat.layers.idempotency import LocalClaims
from tests.support.layers import REDIS_URL
from tests.support.processes import pipe_recv, stop_and_clean


async def _next(layer: Any, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return await layer.receive(channel)


async def test_a_repeated_key_is_delivered_once(facade_layer):
    """Three broadcasts with one key: the first is sent, the others are
    duplicates; a broadcast after them shows nothing else was queued."""
    channel = await facade_layer.new_channel()
    await facade_layer.group_add("room:idem", channel)
    group = Channels.group("room:idem")
    results = [await group.broadcast("once", idempotency_key="k1") for _ in range(3)]
    assert results[0] == SendResult(1, 0)
    assert results[1:] == [SendResult(duplicate=True)] * 2
    await group.broadcast("after")
    assert (await _next(facade_layer, channel))["text"] == "once"
    assert (await _next(facade_layer, channel))["text"] == "after"


async def test_a_key_is_scoped_to_its_group(facade_layer):
    """The same key for another group is a new message."""
    channel = await facade_layer.new_channel()
    await facade_layer.group_add("room:a", channel)
    await facade_layer.group_add("room:b", channel)
    a = await Channels.group("room:a").broadcast("x", idempotency_key="same")
    b = await Channels.group("room:b").broadcast("y", idempotency_key="same")
    assert (a.sent_count, b.sent_count, a.duplicate, b.duplicate) == (1, 1, 0, 0)


async def test_send_with_a_key_returns_a_result(facade_layer):
    """`Channels.send` with a key returns a SendResult, a duplicate the second
    time; without a key it still returns a bool."""
    channel = await facade_layer.new_channel()
    first = await Channels.send(channel, "hi", idempotency_key="s1")
    second = await Channels.send(channel, "hi", idempotency_key="s1")
    assert first == SendResult(1, 0)
    assert second.duplicate
    assert second.total == 0
    assert await Channels.send(channel, "plain") is True
    assert (await _next(facade_layer, channel))["text"] == "hi"
    assert (await _next(facade_layer, channel))["text"] == "plain"


@pytest.mark.parametrize("key", ["", 5, "x" * 201], ids=["empty", "int", "long"])
async def test_a_bad_key_is_refused(facade_layer, key):
    with pytest.raises(TypeError, match="idempotency_key"):
        await Channels.group("room:k").broadcast("x", idempotency_key=key)


def test_a_claim_ends_with_its_window():
    """After the window a key may be used again (a clock of our own, no sleep)."""
    now = [100.0]
    claims = LocalClaims(clock=lambda: now[0])
    assert claims.claim("g:x", "k", 5) is True
    assert claims.claim("g:x", "k", 5) is False
    now[0] += 5.01
    assert claims.claim("g:x", "k", 5) is True


def _sender_process(prefix: str, group: str, times: int, conn: Any) -> None:
    """A separate process: its own Redis layer and facade; broadcasts `times`
    times with one key once the parent says go, and reports the results."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from aether_compat.layers import RedisChannelLayer

    async def main() -> None:
        layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
        Channels.configure(layer)
        conn.send("ready")
        conn.recv()
        results = [
            await Channels.group(group).broadcast("task done", idempotency_key="t-42")
            for _ in range(times)
        ]
        conn.send([(r.sent_count, r.failed_count, r.duplicate) for r in results])
        await layer.close()

    asyncio.run(main())


@pytest.mark.redis
async def test_one_key_from_two_processes_is_delivered_once():
    """The same key sent 3 times from 2 processes (2 + 1, at once) on Redis: one
    delivery, one result with sent_count 1, two duplicates."""
    from aether_compat.layers import RedisChannelLayer

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    receiver = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    channel = await receiver.new_channel()
    await receiver.group_add("room:idem2", channel)
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    try:
        for times in (2, 1):
            parent, child = context.Pipe()
            process = context.Process(
                target=_sender_process, args=(prefix, "room:idem2", times, child)
            )
            process.start()
            pipes.append(parent)
            processes.append(process)
        for pipe in pipes:
            assert await pipe_recv(pipe, 60) == "ready"
        for pipe in pipes:
            pipe.send("go")
        outcomes = [r for pipe in pipes for r in await pipe_recv(pipe, 30)]
        assert sorted(outcomes) == [(0, 0, True), (0, 0, True), (1, 0, False)]
        assert (await _next(receiver, channel))["text"] == "task done"
        await receiver.group_send("room:idem2", {"type": "t", "text": "sentinel"})
        assert (await _next(receiver, channel))["text"] == "sentinel"
    finally:
        for process in processes:
            await stop_and_clean(process, prefix)
        await receiver.close()


@pytest.mark.redis
@pytest.mark.parametrize("budget", [0.0, 0.0005, 0.002, 0.01])
async def test_a_retry_after_a_timed_out_attempt_delivers_at_most_once(budget):
    """The first attempt is cut off by a timeout wherever it happens to be (before,
    during or after the claim); the retry with the same key then delivers only if
    the first did not: never twice."""
    from aether_compat.layers import RedisChannelLayer

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    Channels.configure(layer)
    try:
        channel = await layer.new_channel()
        await layer.group_add("room:retry", channel)
        group = Channels.group("room:retry")
        try:
            async with asyncio.timeout(budget):
                await group.broadcast("notify", idempotency_key="task-7")
        except TimeoutError:
            pass
        retry = await group.broadcast("notify", idempotency_key="task-7")
        await group.broadcast("sentinel")
        texts = [(await _next(layer, channel))["text"]]
        if texts[0] != "sentinel":
            texts.append((await _next(layer, channel))["text"])
        assert texts.count("notify") <= 1
        assert texts[-1] == "sentinel"
        assert retry.duplicate or retry.sent_count == 1
    finally:
        await layer.flush()
        await layer.close()
