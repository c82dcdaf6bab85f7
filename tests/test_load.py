"""Load and soak (issue 6 point 5): 500 WebSocket clients in 10 rooms on two daphne
servers that share a private Redis; in every room two members (one per server)
send at a steady rate for 60 s. Nothing is lost or duplicated, each sender's order
holds, every send reports all 50 members reached, p50/p99 latency is reported, and
neither server's memory grows by 10% after the warm-up.

Sizing, for 2 cores shared by the clients, two servers and Redis: 20 senders x 5
messages/s = 100 broadcasts/s = 5,000 deliveries/s (2,500 per server). The clients
are hand-written (`LightClient`); the figures include each process's CPU, so one
can see that the servers, not the clients, set the pace. Clients join 50 at a
time, so that the steady phase is measured; a burst of joins in one process has
its own test below.
"""

import asyncio
import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field

import pytest

from aether_compat.layers import RedisChannelLayer
from tests.support.layers import REDIS_URL
from tests.support.light_client import LightClient, connect_many
from tests.support.redis_servers import redis_server
from tests.support.reliability import (
    cpu_seconds,
    mib,
    own_cpu_seconds,
    percentile,
    record_figures,
    rss_bytes,
)
from tests.support.servers import daphne_servers, prepare_database

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.load,
    pytest.mark.e2e,
    pytest.mark.redis,
]

CLIENTS = 500
ROOMS = 10
RATE = 5.0  # messages per second per sender; two senders per room
SECONDS = 60.0
WARM_UP = 10.0
JOIN_BATCH = 50
CHAT = re.compile(rb'"payload":"(\d+) (\d+) (\d+)"')
SENT = re.compile(rb'"sent_count\\?":(\d+),\\?"failed_count\\?":(\d+)')


class Totals:
    """Counts shared by every client, and an event that fires when they change."""

    def __init__(self) -> None:
        self.joined = 0
        self.delivered = 0
        self.changed = asyncio.Event()

    async def reach(self, attribute: str, target: int, within: float) -> None:
        async with asyncio.timeout(within):
            while getattr(self, attribute) < target:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Inbox:
    """What one client received: per sender, the last number and the count."""

    totals: Totals
    latencies: list[float]
    last: dict[int, int] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)
    disorder: int = 0
    replies: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, frame: bytes) -> None:
        match = CHAT.search(frame)
        if match is None:
            self._reply(frame)
            return
        sender, seq = int(match[1]), int(match[2])
        self.latencies.append((time.time_ns() - int(match[3])) / 1e6)
        if seq <= self.last.get(sender, -1):
            self.disorder += 1  # a duplicate or an overtaken message
        self.last[sender] = seq
        self.count[sender] = self.count.get(sender, 0) + 1
        self.totals.delivered += 1
        self.totals.changed.set()

    def _reply(self, frame: bytes) -> None:
        if reply := SENT.search(frame):
            self.replies.append((int(reply[1]), int(reply[2])))
        elif b"aether.joined" in frame:
            self.totals.joined += 1
            self.totals.changed.set()


async def steady_senders(senders: list[tuple[int, LightClient, str]], until: float):
    """Each sender sends `RATE` messages per second, the senders evenly staggered;
    returns how many each sent."""
    interval = 1 / (RATE * len(senders))
    sent = [0] * len(senders)
    start = time.monotonic()
    tick = 0
    while time.monotonic() < until:
        index = tick % len(senders)
        sender_id, client, room = senders[index]
        client.send_command("send", room, f"{sender_id} {sent[index]} {time.time_ns()}")
        sent[index] += 1
        tick += 1
        delay = start + tick * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the clock is the subject: a steady rate
    return sent


@pytest.mark.timeout(240)
async def test_500_clients_in_10_rooms_on_two_servers_for_60_seconds(tmp_path):
    db_path = tmp_path / "demo.sqlite3"
    prepare_database(db_path)
    latencies: list[float] = []
    with (
        redis_server() as redis,
        daphne_servers(db_path, 2, AETHER_REDIS_URL=redis.url) as servers,
    ):
        clients: list[LightClient] = []
        for server in servers:
            clients += await connect_many(server.port, CLIENTS // 2)
        totals = Totals()
        inboxes = [Inbox(totals, latencies) for _ in clients]
        for index, (client, inbox) in enumerate(zip(clients, inboxes, strict=True)):
            client.on_text = inbox
            client.send_command("join", _room(index))
            if index % JOIN_BATCH == JOIN_BATCH - 1:  # see the burst test below
                await totals.reach("joined", index + 1, within=30)
        senders = [
            (sender_id, clients[index], _room(index))
            for sender_id, index in enumerate(_first_of_each_room())
        ]
        pids = [server.process.pid for server in servers] + [redis.process.pid]
        cpu_before = [cpu_seconds(pid) for pid in pids] + [own_cpu_seconds()]
        started = time.monotonic()
        warm = asyncio.ensure_future(_rss_after(servers, WARM_UP, latencies))
        sent = await steady_senders(senders, started + SECONDS)
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(pid) for pid in pids] + [own_cpu_seconds()]
        rss_warm, latency_mark = await warm
        rss_end = [rss_bytes(server.process.pid) for server in servers]
        with contextlib.suppress(TimeoutError):  # what is missing is counted below
            await totals.reach("delivered", sum(sent) * CLIENTS // ROOMS, within=15)
        for client in clients:
            await client.close()
        tracebacks = [line for server in servers for line in server.tracebacks()]

    expected = _expected_counts(senders, sent)
    lost = duplicates = 0
    for index, inbox in enumerate(inboxes):
        for sender_id, count in expected[_room(index)].items():
            got = inbox.count.get(sender_id, 0)
            lost += max(0, count - got)
            duplicates += max(0, got - count)
    replies = [reply for inbox in inboxes for reply in inbox.replies]
    steady = latencies[latency_mark:]
    growth = [(end - warm) / warm for warm, end in zip(rss_warm, rss_end, strict=True)]
    cpu_used = [round(b - a, 1) for a, b in zip(cpu_before, cpu, strict=True)]
    record_figures(
        "Load: 500 clients, 10 rooms, two servers on one Redis, 60 s",
        "no loss, no duplicates, order per sender kept; p50/p99 reported; server "
        "memory growth after warm-up < 10%",
        clients=CLIENTS,
        rooms=ROOMS,
        senders=len(senders),
        broadcasts=sum(sent),
        deliveries=sum(sum(inbox.count.values()) for inbox in inboxes),
        deliveries_per_second=round(sum(sent) * CLIENTS / ROOMS / elapsed),
        lost=lost,
        duplicates=duplicates,
        out_of_order=sum(inbox.disorder for inbox in inboxes),
        sends_reporting_failures=sum(1 for _, failed in replies if failed),
        p50_ms=round(percentile(steady, 0.50), 1),
        p99_ms=round(percentile(steady, 0.99), 1),
        max_ms=round(max(steady), 1),
        rss_after_warm_up_mib=[mib(size) for size in rss_warm],
        rss_growth_after_warm_up_pct=[round(100 * g, 1) for g in growth],
        cpu_seconds_servers_redis_clients=cpu_used,
        seconds=round(elapsed, 1),
    )
    assert lost == duplicates == 0
    assert sum(inbox.disorder for inbox in inboxes) == 0
    assert len(replies) == sum(sent)
    assert all(reply == (CLIENTS // ROOMS, 0) for reply in replies)
    assert all(g < 0.10 for g in growth), growth
    assert not tracebacks


async def test_a_burst_of_300_joins_in_one_process_all_land():
    """300 connections of one server join at once (a deploy, a reconnect storm):
    every membership must reach Redis, or be announced again soon after. (Only 99
    did, while the layer used redis-py's plain pool: see notes-reliability.md.)"""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    owner = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    sender = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        channels = [await owner.new_channel() for _ in range(300)]
        await asyncio.gather(*(owner.group_add("burst", ch) for ch in channels))
        result = await sender.group_send("burst", {"type": "x"})
        members = await sender.group_members("burst")
    finally:
        await owner.flush()
        await owner.close()
        await sender.close()
    record_figures(
        "Burst of 300 joins in one process (layer alone)",
        "every membership lands",
        memberships_landed=len(members),
        broadcast_sent=result.sent_count,
        broadcast_failed=result.failed_count,
    )
    assert len(members) == 300
    assert result.sent_count == 300


def _room(index: int) -> str:
    return f"room:load-{index % ROOMS}"


def _first_of_each_room() -> list[int]:
    """Client indexes of the senders: per room, the first client on each server."""
    half = CLIENTS // 2
    return [*range(ROOMS), *range(half, half + ROOMS)]


async def _rss_after(servers, seconds: float, latencies: list[float]):
    """Each server's RSS at the end of the warm-up, and where steady latencies
    begin in the shared list."""
    await asyncio.sleep(seconds)  # the warm-up is a span of time
    return [rss_bytes(server.process.pid) for server in servers], len(latencies)


def _expected_counts(senders, sent) -> dict[str, dict[int, int]]:
    expected: dict[str, dict[int, int]] = {}
    for (sender_id, _, room), count in zip(senders, sent, strict=True):
        expected.setdefault(room, {})[sender_id] = count
    return expected
