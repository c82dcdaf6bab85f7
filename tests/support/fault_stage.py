"""The stage of the fault tests (test_faults.py): two demo servers on one Redis,
WebSocket clients of each in one room, a broadcaster in the test process, and the
figures that compare what each broadcast's `SendResult` said with what arrived."""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from aether_compat.facade import ChannelsFacade
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.config import COMMAND_TIMEOUT
from tests.support.light_client import LightClient
from tests.support.reliability import Outcome, Tally
from tests.support.servers import copy_database, daphne_servers

ROOM = "room:faults"


@dataclass
class Member:
    server: int
    client: LightClient
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.tally = Tally.attach(self.client)


@dataclass
class Stage:
    """Two demo servers on one Redis, clients of each in `ROOM`, and a broadcaster."""

    servers: list
    facade: ChannelsFacade
    members: list[Member] = field(default_factory=list)

    @property
    def group(self):
        return self.facade.group(ROOM)

    async def join(self, server: int, count: int, path: str = "/ws/realtime/"):
        for _ in range(count):
            client = await LightClient().connect(self.servers[server].port, path)
            member = Member(server, client)
            if path == "/ws/realtime/":
                client.send_command("join", ROOM)
                assert (await client.reply())[0] == "aether.joined"
            self.members.append(member)
        return self.members[-count:]

    async def members_now(self) -> set[str]:
        return await self.facade.group_members(ROOM)

    def tracebacks(self) -> list[str]:
        return [line for server in self.servers for line in server.tracebacks()]


@contextlib.asynccontextmanager
async def stage(tmp_path, template_db, redis_url, broadcaster_hosts=None, **env):
    db_path = copy_database(template_db, tmp_path)
    with daphne_servers(db_path, 2, AETHER_REDIS_URL=redis_url, **env) as servers:
        layer = RedisChannelLayer(hosts=broadcaster_hosts or [redis_url])
        facade = ChannelsFacade()
        facade.configure(layer)
        current = Stage(servers, facade)
        try:
            yield current
        finally:
            for member in current.members:
                await member.client.close()
            await layer.close()


async def settle_members(stage_, expected: set[str] | int, within: float) -> float:
    """Seconds until `group_members(ROOM)` is `expected` (a set, or a size)."""
    started = time.monotonic()
    members: set[str] | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(Exception):  # Redis may still be down
                    members = await stage_.members_now()
                    if members == expected or len(members) == expected:
                        return time.monotonic() - started
                await asyncio.sleep(0.05)  # another process's presence is the subject
    except TimeoutError:
        for server in stage_.servers:  # what the servers said, for the diagnosis
            print("".join(server.lines[-100:]))
        raise AssertionError(
            f"group_members({ROOM!r}) is {members}, not {expected}, after {within} s"
        ) from None


async def deliver_marker(stage_, members: list[Member], seq: int, within: float):
    """Broadcast `seq` until every one of `members` has it; seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(Exception):
                await stage_.group.broadcast(str(seq))
            try:
                async with asyncio.timeout(0.5):
                    for member in members:
                        await member.tally.until_seen(seq, within)
                return time.monotonic() - started
            except TimeoutError:
                seq += 1


def delivery_figures(outcomes: list[Outcome], members: list[Member]) -> dict:
    """Counted deliveries against received ones, broadcast by broadcast."""
    received: dict[int, int] = {}
    for member in members:
        for seq in set(member.tally.seqs):
            received[seq] = received.get(seq, 0) + 1
    return {
        "broadcasts": len(outcomes),
        "deliveries_counted_sent": sum(o.sent for o in outcomes),
        "deliveries_received": sum(received.get(o.seq, 0) for o in outcomes),
        "counted_sent_not_received": sum(
            max(0, o.sent - received.get(o.seq, 0)) for o in outcomes
        ),
        "received_not_counted_sent": sum(
            max(0, received.get(o.seq, 0) - o.sent) for o in outcomes
        ),
        "broadcasts_with_failures": sum(1 for o in outcomes if o.failed),
        "failures_by_kind": _failure_kinds(outcomes),
        "duplicates": sum(m.tally.duplicates() for m in members),
        "out_of_order": sum(m.tally.out_of_order() for m in members),
    }


def _failure_kinds(outcomes: list[Outcome]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        for kind in outcome.errors:
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def missing_full_broadcasts(outcomes: list[Outcome], members: list[Member], size: int):
    """Broadcasts counted as sent to all `size` members that some member lacks."""
    full = {o.seq: o for o in outcomes if o.sent == size}
    missing = []
    for member in members:
        have = set(member.tally.seqs)
        missing += [full[seq] for seq in full if seq not in have]
    return missing


def first_full_delivery(outcomes: list[Outcome], members: list[Member], since: float):
    """Seconds from `since` until a broadcast started after it reached every member."""
    for outcome in outcomes:
        if outcome.started > since and all(
            outcome.seq in m.tally.arrived for m in members
        ):
            return round(max(m.tally.arrived[outcome.seq] for m in members) - since, 3)
    return None


async def timed_reply(client: LightClient, since: float):
    """The client's next reply, and how long after `since` it came."""
    kind, payload = await client.reply(within=COMMAND_TIMEOUT + 1)
    return kind, payload, time.monotonic() - since
