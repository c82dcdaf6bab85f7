"""The parts of bench/redis_bench.py that need other processes or Redis' own
counters: fan-out to two receiver processes (throughput and paced latency), Redis
commands per operation, and memory per parked channel."""

import asyncio
import multiprocessing
import statistics
import time
import uuid
from typing import Any

import redis
from channels_redis.core import RedisChannelLayer as CoreLayer
from channels_redis.pubsub import RedisPubSubChannelLayer as PubSubLayer

from aether_compat.layers import RedisChannelLayer as OurLayer
from bench.harness import Arrivals, bare_task_bytes, measure_memory, park, stop

LAYERS = ("ours", "core", "pubsub")
MESSAGE = {"type": "chat.message", "text": "Hello, everyone in the room!", "n": 42}
PACED_RATE = 10  # broadcasts per second in the latency test
PARKED = 1000


HISTORY = {"history_size": 100, "history_ttl": 300}  # the history variant's group


def make_layer(kind: str, url: str, prefix: str, **config: Any) -> Any:
    """A layer of `kind` on `url` under `prefix`, each with its default settings
    (`config` adds ours'); core gets socket_timeout=None, without which its idle
    receive raises."""
    if kind == "ours":
        return OurLayer(hosts=[url], prefix=prefix, **config)
    if kind == "core":
        return CoreLayer(
            hosts=[{"address": url, "socket_timeout": None}], prefix=prefix
        )
    return PubSubLayer(hosts=[url], prefix=prefix)


async def close_layer(kind: str, layer: Any) -> None:
    if kind == "ours":
        await layer.flush()
        await layer.close()
    elif kind == "core":
        await layer.flush()
        await layer.close_pools()
    else:
        await layer.flush()


# Two receiver processes


def two_process_fanout(
    kind: str, url: str, members: int, seconds: float, quick: bool
) -> tuple[float, float, float]:
    """Deliveries per second to two processes of `members` channels each (whole
    rounds), then p50 and p99 latency (ms) of broadcasts paced at PACED_RATE/s."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(2):
        parent, child = context.Pipe()
        process = context.Process(
            target=receiver_process, args=(kind, url, prefix, members, child)
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    try:
        for pipe in pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a receiver process did not start")
        paced = max(10, int(PACED_RATE * (2 if quick else 3)))
        return asyncio.run(
            _broadcast(kind, url, prefix, members, seconds, paced, pipes)
        )
    finally:
        for pipe in pipes:
            pipe.send(("quit",))
        for process in processes:
            process.join(20)
            if process.is_alive():
                process.kill()


async def _broadcast(kind, url, prefix, members, seconds, paced, pipes):
    layer = make_layer(kind, url, prefix)
    try:
        rounds, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for pipe in pipes:
                pipe.send(("round",))
                pipe.recv()  # "expecting": the next round is counted from here
            await layer.group_send("room", MESSAGE)
            for pipe in pipes:
                if not pipe.poll(60):
                    raise RuntimeError("a round did not complete within 60 s")
                pipe.recv()
            rounds += 1
        rate = rounds * members * 2 / (time.perf_counter() - start)
        for pipe in pipes:
            pipe.send(("paced", paced))
        for index in range(paced):  # the clock is the subject: a fixed pace
            await layer.group_send("room", {**MESSAGE, "t": time.time(), "i": index})
            await asyncio.sleep(1 / PACED_RATE)
        latencies: list[float] = []
        for pipe in pipes:
            if not pipe.poll(paced / PACED_RATE + 60):
                raise RuntimeError("paced broadcasts were not all delivered")
            latencies += pipe.recv()
        cuts = statistics.quantiles(latencies, n=100)
        return rate, cuts[49] * 1000, cuts[98] * 1000
    finally:
        await close_layer(kind, layer)


def receiver_process(kind: str, url: str, prefix: str, members: int, pipe) -> None:
    asyncio.run(_receive(kind, url, prefix, members, pipe))


async def _receive(kind, url, prefix, members, pipe):
    layer = make_layer(kind, url, prefix)
    channels = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add("room", channel)
    arrivals, latencies = Arrivals(), []

    async def consume(channel):
        while True:
            message = await layer.receive(channel)
            if "t" in message:
                latencies.append(time.time() - message["t"])
            arrivals.count += 1
            if arrivals.count == arrivals.expected:
                arrivals.complete.set()

    tasks = [asyncio.create_task(consume(channel)) for channel in channels]
    await asyncio.sleep(1.0)  # every receive has reached Redis
    pipe.send("ready")
    while True:
        command = await asyncio.to_thread(pipe.recv)
        if command[0] == "quit":
            break
        expected = members * (command[1] if command[0] == "paced" else 1)
        arrivals.expect(expected)
        if command[0] == "round":
            pipe.send("expecting")
        budget = command[1] / PACED_RATE + 20 if command[0] == "paced" else 30
        try:  # a layer that drops messages never completes: report what came
            async with asyncio.timeout(budget):
                await arrivals.complete.wait()
        except TimeoutError:
            pass
        pipe.send(latencies if command[0] == "paced" else "done")
    await stop(tasks)


# Redis commands per operation (INFO commandstats of a private server)


async def command_counts(kind: str, server: Any) -> dict[str, float]:
    """Commands Redis ran per send, per receive and per group_send to 100 members."""
    prefix, count = f"bench-{uuid.uuid4().hex[:8]}", 90
    owner = make_layer(kind, server.url, prefix)
    sender = make_layer(kind, server.url, prefix)
    raw = server.client()
    try:
        channel = await owner.new_channel()
        members = [await owner.new_channel() for _ in range(100)]
        for member in members:
            await owner.group_add("room", member)
        if kind == "ours":  # its pump would take the messages as they come
            await _pause_pump(owner)
        await asyncio.sleep(0.3)
        result = {}
        raw.config_resetstat()
        for _ in range(count):
            await sender.send(channel, MESSAGE)
        result["send"] = _calls(raw) / count
        raw.config_resetstat()
        for _ in range(count):
            await owner.receive(channel)
        result["receive"] = _calls(raw) / count
        if kind == "ours":
            await _pause_pump(owner)
            await asyncio.sleep(0.3)
        raw.config_resetstat()
        for _ in range(20):
            await sender.group_send("room", MESSAGE)
        result["group_send 100"] = _calls(raw) / 20
        return result
    finally:
        raw.close()
        await close_layer(kind, owner)
        await close_layer(kind, sender)


async def _pause_pump(layer: Any) -> None:
    """Stop our layer's pump (its next receive starts it again) while its process
    stays alive in Redis: `close()` would take it out, and sends would fail."""
    await layer._inbox.stop(asyncio.get_running_loop())


def _calls(raw: Any) -> int:
    stats = raw.info("commandstats")
    skip = {"cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"}
    return sum(v["calls"] for k, v in stats.items() if k not in skip)


# Memory per parked channel


async def parked_channel_bytes(kind: str, url: str) -> tuple[float, float]:
    """Redis and Python bytes per channel that is in a group and parked in receive().
    Redis bytes are the MEMORY USAGE of the contestant's own keys (used_memory also
    moves with client buffers and the script cache, which are not per channel)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    layer = make_layer(kind, url, prefix)
    raw = redis.Redis.from_url(url)
    arrivals = Arrivals()

    async def setup():
        channels = [await layer.new_channel() for _ in range(PARKED)]
        for channel in channels:
            await layer.group_add("room", channel)
        tasks = await park([lambda c=c: layer.receive(c) for c in channels], arrivals)
        await asyncio.sleep(0.5)
        return tasks

    try:
        tasks, python_bytes = await measure_memory(setup)
        keys = list(raw.scan_iter(match=f"{prefix}*", count=1000))
        redis_bytes = sum(raw.memory_usage(key) or 0 for key in keys)
        await stop(tasks)
        bare = await bare_task_bytes(PARKED)
        return redis_bytes / PARKED, ((python_bytes or 0) - bare) / PARKED
    finally:
        raw.close()
        await close_layer(kind, layer)
