"""The end-to-end benchmark's bookkeeping (bench/e2e_bench.py, bench/e2e_modes.py):
a broadcast leaves the window only once every watcher saw it, and the Redis setup
samples latency on both servers."""

import asyncio

from bench.e2e_bench import Room
from bench.e2e_modes import IN_MEMORY, REDIS


def test_a_broadcast_is_acknowledged_once_every_watcher_saw_it():
    async def scenario() -> list[int]:
        room = Room(watchers=2)
        remote = room.counter(sampled=False, watcher=True)
        room.echo(b"7 1700000000000000000")  # the broadcaster's own copy
        assert room.echoes.empty()
        remote(b"7 1700000000000000000")  # the member on the other server
        return [room.echoes.get_nowait()]

    assert asyncio.run(scenario()) == [7]


def test_one_watcher_acknowledges_at_once():
    room = Room(watchers=1)
    room.echo(b"3 1700000000000000000")
    assert room.echoes.get_nowait() == 3


def test_redis_mode_samples_latency_on_both_servers_over_the_whole_room():
    sampled = REDIS.sampled(500)
    assert len(sampled) == REDIS.latency_clients
    assert {index % 2 for index in sampled} == {0, 1}  # clients alternate servers
    assert max(sampled) > 400  # late joiners too, not only the first ones
    assert IN_MEMORY.sampled(500) == set(range(20))  # unchanged


def test_settle_waits_for_every_member_to_have_every_broadcast():
    async def scenario() -> tuple[bool, int]:
        room = Room(watchers=1)
        members = [room.counter(sampled=False) for _ in range(3)]
        members[0](b"1 1700000000000000000")
        waiting = asyncio.ensure_future(room.settle(3))
        await asyncio.sleep(0)  # let it park on the event
        early = waiting.done()
        for member in members[1:]:
            member(b"1 1700000000000000000")
        return early, await waiting

    assert asyncio.run(scenario()) == (False, 0)
