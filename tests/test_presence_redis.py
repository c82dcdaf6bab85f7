"""Presence on the Redis layer (issue 13): metadata per membership across layer
instances, state then diffs with sequence numbers, one join and one leave per
user, grace, crashes (`kill -9` of a real process), a flushed Redis.

Watchers apply events as /work/spec/presence-internal.md says AetherConsumer
does, so the tests see what a client would."""

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import time
import uuid
from typing import Any

import pytest

from aether_compat.errors import MemberUnreachable
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.keys import box_base
from aether_compat.layers.redis.people_scripts import LEAVE as PEOPLE_LEAVE
from aether_compat.layers.redis.people_values import field_of, group_base
from aether_compat.presence import PresenceStats
from tests.support.layers import REDIS_URL
from tests.support.processes import pipe_recv, stop_and_clean
from tests.support.redis_servers import redis_cluster, redis_server
from tests.support.redis_truth import until
from tests.support.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.redis

GRACE = 0.5
OPTIONS = {
    "room:*": {"presence_events": True, "presence_grace": GRACE},
    "now:*": {"presence_events": True, "presence_grace": 0},
}


def new_layer(prefix: str, url: str = REDIS_URL, **config: Any) -> RedisChannelLayer:
    config.setdefault("group_options", OPTIONS)
    return RedisChannelLayer(hosts=[url], prefix=prefix, **config)


@pytest.fixture
async def layers():
    """Two layer instances (two "servers") over one prefix no other test uses."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    made = [new_layer(prefix), new_layer(prefix)]
    yield made
    for layer in made:
        await layer.close()
    await made[0].flush()
    await made[0].close()


class Watcher:
    """A member that applies state and diffs as the consumer does: entries at or
    below the state's number, or older than the key's last, are dropped; so are a
    join of a present key and a leave of an absent one."""

    def __init__(self, layer: RedisChannelLayer, group: str) -> None:
        self.layer, self.group = layer, group
        self.present: dict[str, list[dict[str, Any]]] = {}
        self.changes: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []
        self._state_seq = -1
        self._last: dict[str, int] = {}

    async def join(self, meta: dict[str, Any]) -> "Watcher":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel, meta=meta)
        state = await self._receive(5)
        assert state["type"] == "aether.presence_state"
        self.present, self._state_seq = dict(state["presence"]), state["_seq"]
        return self

    async def _receive(self, within: float) -> dict[str, Any]:
        async with asyncio.timeout(within):
            event = await self.layer.receive(self.channel)
        self.events.append(event)
        return event

    async def next_change(self, within: float = 5) -> tuple[str, str]:
        """The next change that reaches the client (waits through dropped ones)."""
        seen = len(self.changes)
        async with asyncio.timeout(within):
            while len(self.changes) == seen:
                self._apply(await self._receive(within))
        return self.changes[seen]

    async def until(self, predicate: Any, within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not predicate(self):
                self._apply(await self._receive(within))

    def _apply(self, diff: dict[str, Any]) -> None:
        assert diff["type"] == "aether.presence_diff"
        entries = [("+", k, m) for k, m in diff["joins"].items()]
        entries += [("-", k, m) for k, m in diff["leaves"].items()]
        seqs = diff["_seqs"]
        for sign, key, metas in sorted(entries, key=lambda e: seqs[e[0] + e[1]]):
            seq = seqs[sign + key]
            if seq <= self._state_seq or seq <= self._last.get(key, -1):
                continue
            self._last[key] = seq
            if (sign == "+") == (key in self.present):
                continue
            if sign == "+":
                self.present[key] = metas
            else:
                del self.present[key]
            self.changes.append((sign, key))


async def tab(layer: RedisChannelLayer, group: str, user: str | None) -> str:
    channel = await layer.new_channel()
    meta = {"device": channel[-4:]} | ({"user": user} if user else {})
    await layer.group_add(group, channel, meta=meta)
    return channel


async def test_three_tabs_over_two_servers_are_one_join_and_one_leave(layers):
    """A's 3 tabs over 2 instances: one join; closing 2: nothing; closing the
    last: one leave, after the grace period and within a second more."""
    await three_tabs(*layers, "room:1")


async def three_tabs(a: RedisChannelLayer, b: RedisChannelLayer, group: str) -> None:
    watcher = await Watcher(a, group).join({"user": "watcher"})
    tabs = [(a, await tab(a, group, "A"))]
    tabs += [(b, await tab(b, group, "A")), (b, await tab(b, group, "A"))]
    assert await watcher.next_change() == ("+", "A")
    assert await b.group_presence_stats(group) == PresenceStats(4, 2)
    for layer, channel in tabs[:2]:
        await layer.group_discard(group, channel)
    await b.group_discard(group, tabs[2][1])
    closed = time.monotonic()
    assert await watcher.next_change(GRACE + 3) == ("-", "A")
    assert GRACE <= time.monotonic() - closed <= GRACE + 1
    assert watcher.changes == [("+", "A"), ("-", "A")]
    raw = [k for e in watcher.events[1:] for k in e["_seqs"] if k.endswith("A")]
    assert sorted(raw) == ["+A", "-A"]  # no diff event repeated either


async def three_tabs_on(hosts: list, groups: list[str], flush: bool = False) -> None:
    """`three_tabs` in each of `groups`, with two layer instances on `hosts`;
    `flush` removes their keys afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    a, b = (
        RedisChannelLayer(hosts=hosts, prefix=prefix, group_options=OPTIONS)
        for _ in range(2)
    )
    try:
        for group in groups:
            await three_tabs(a, b, group)
    finally:
        for layer in (a, b):
            await layer.close()
        if flush:
            await a.flush()
            await a.close()


@pytest.mark.faults
async def test_one_join_and_one_leave_over_two_sharded_servers():
    """Several Redis hosts: each group's presence lives on its group's host."""
    with redis_server() as one, redis_server() as two:
        hosts = [one.url, two.url]
        await three_tabs_on(hosts, [f"room:s{i}" for i in range(4)])  # both hosts


async def test_reconnect_within_grace_announces_nothing(layers):
    a, b = layers
    watcher = await Watcher(a, "room:2").join({"user": "watcher"})
    first = await tab(a, "room:2", "A")
    assert await watcher.next_change() == ("+", "A")
    await a.group_discard("room:2", first)
    await tab(b, "room:2", "A")  # the reload lands on the other server
    marker = await tab(b, "room:2", "M")
    assert await watcher.next_change() == ("+", "M")
    await b.group_discard("room:2", marker)  # its leave is due after A's would be
    assert await watcher.next_change(GRACE + 3) == ("-", "M")
    assert watcher.changes == [("+", "A"), ("+", "M"), ("-", "M")]
    assert watcher.present.keys() == {"watcher", "A"}


async def test_state_lists_a_user_in_grace_and_no_grace_leaves_at_once(layers):
    a, b = layers
    gone = await tab(a, "room:3", "A")
    await a.group_discard("room:3", gone)
    late = await Watcher(b, "room:3").join({"user": "late"})
    assert "A" in late.present  # no leave went out for A yet
    assert await late.next_change(GRACE + 3) == ("-", "A")
    now = await Watcher(a, "now:1").join({"user": "watcher"})
    quick = await tab(b, "now:1", "Q")
    assert await now.next_change() == ("+", "Q")
    await b.group_discard("now:1", quick)
    assert await now.next_change(1.5) == ("-", "Q")


async def test_rolling_restart_within_grace_announces_nothing(layers):
    """A server stops gracefully; its users reconnect to the other one within
    the grace period: the others see neither leaves nor joins."""
    a, b = layers
    stopping = new_layer(a.prefix)
    watcher = await Watcher(a, "room:7").join({"user": "watcher"})
    users = [f"u{i}" for i in range(10)]
    for user in users:
        await tab(stopping, "room:7", user)
    await watcher.until(lambda w: len(w.present) == 11)
    await stopping.close()
    for user in users:
        await tab(b, "room:7", user)
    marker = await tab(b, "room:7", "M")
    await b.group_discard("room:7", marker)  # due after every user's would be
    assert await watcher.next_change(GRACE + 3) == ("+", "M")
    assert await watcher.next_change(GRACE + 3) == ("-", "M")
    assert watcher.changes == [("+", u) for u in users] + [("+", "M"), ("-", "M")]


@pytest.mark.faults
async def test_a_stopping_process_is_never_dead_while_holding_connections():
    """A graceful stop puts its users' leaves into grace before it deletes its
    live key. The other order let another server's sweep, between the two, find
    the box dead with connections and announce every user as leaving at once
    (on a fresh Redis the leave script is loaded first: a wide gap)."""
    with redis_server() as redis:
        stopping = new_layer("farewell", redis.url)
        for user in ("A", "B", "C"):
            await tab(stopping, "room:f", user)
        seen: list[str] = []
        with redis.client().monitor() as monitor:  # on once this returns

            def record() -> None:
                for entry in monitor.listen():
                    seen.append(entry["command"])
                    if entry["command"] == "PING marker":
                        return

            recording = asyncio.create_task(asyncio.to_thread(record))
            await stopping.close()
            redis.client().execute_command("PING", "marker")
            await asyncio.wait_for(recording, 10)
    live = f"DEL {box_base('farewell', stopping._presence.box)}l"
    sha = PEOPLE_LEAVE.sha
    killed = max(i for i, c in enumerate(seen) if c.startswith(live))
    left = [i for i, c in enumerate(seen) if c.startswith(f"EVALSHA {sha}")]
    assert left, seen
    assert max(left) < killed, seen


@contextlib.asynccontextmanager
async def a_leave_lost_in_an_outage(group: str):
    """A watcher on one layer and user U's tab on another, behind a proxy, whose
    leave times out in a stall and never reaches Redis. Yields (redis, the
    owner of U's tab, the other layer, the watcher, U's channel)."""
    with redis_server() as redis, tcp_proxy(redis.port) as proxy:
        host = {"address": proxy.url, "socket_timeout": 0.5}
        owner = new_layer("outage", host)
        other = new_layer("outage", redis.url)
        try:
            watcher = await Watcher(other, group).join({"user": "watcher"})
            gone = await tab(owner, group, "U")
            assert await watcher.next_change() == ("+", "U")
            proxy.stall()  # the leave waits in the proxy; the client times out
            await owner.group_discard(group, gone)
            proxy.drop_all()  # and it never reaches Redis
            proxy.resume()
            yield redis, owner, other, watcher, gone
        finally:
            for layer in (owner, other):
                await layer.close()


@pytest.mark.faults
async def test_a_leave_redis_did_not_take_goes_with_the_farewell():
    """A user's leave times out in an outage, then the server stops: the farewell
    takes that connection out too, into grace, so the user reconnecting elsewhere
    is announced nothing (left behind, another server's sweep would find it on a
    dead box and announce a leave at once)."""
    async with a_leave_lost_in_an_outage("room:u") as (redis, stopping, other, w, gone):
        assert stopping._presence.people.unconfirmed == {"room:u": {field_of(gone)[1]}}
        await stopping.close()
        grace = group_base("outage", "room:u") + "pg"
        assert redis.client().zscore(grace, "U") is not None
        await tab(other, "room:u", "U")  # the reload lands on the other server
        await other.group_discard("room:u", await tab(other, "room:u", "M"))
        await w.until(lambda w: ("-", "M") in w.changes, GRACE + 3)
        assert w.changes == [("+", "U"), ("+", "M"), ("-", "M")]


@pytest.mark.faults
async def test_a_leave_redis_did_not_take_is_repaired_by_the_sweep():
    """The last member of a group on this server leaves in an outage and the
    server lives on: its sweep still looks at that group and takes the stale
    connection out, so the user leaves once, after grace."""
    async with a_leave_lost_in_an_outage("room:r") as (_, owner, _, watcher, _):
        assert await watcher.next_change(GRACE + 5) == ("-", "U")
        assert owner._presence.people.unconfirmed == {}


async def test_a_leave_in_grace_outlives_the_process_that_made_it(layers):
    a, _ = layers
    gone = new_layer(a.prefix)
    watcher = await Watcher(a, "room:8").join({"user": "watcher"})
    await gone.group_discard("room:8", await tab(gone, "room:8", "A"))
    await gone.close()  # its worker will never announce A's leave
    assert await watcher.next_change() == ("+", "A")
    assert await watcher.next_change(GRACE + 3) == ("-", "A")


async def test_concurrent_joins_from_two_instances_end_exact(layers):
    a, b = layers
    watcher = await Watcher(a, "room:4").join({"user": "watcher"})
    users = [f"u{i}" for i in range(25)]
    await asyncio.gather(
        *(tab(layer, "room:4", user) for user in users for layer in (a, b))
    )
    expected = {"watcher", *users}
    await watcher.until(lambda w: w.present.keys() == expected)
    presence = await b.group_presence("room:4")
    assert presence.keys() == expected
    assert all(len(presence[user]) == 2 for user in users)
    assert await a.group_presence_stats("room:4") == PresenceStats(51, 26)
    joins = [k for e in watcher.events[1:] for k in e["joins"] if k != "watcher"]
    assert sorted(joins) == sorted(users)  # each one once


async def test_concurrent_joins_and_leaves_end_exact(layers):
    """Churn from two instances at once: the final state is exact, and every
    user who left is announced once."""
    a, b = layers
    watcher = await Watcher(a, "now:2").join({"user": "watcher"})
    users = [f"u{i}" for i in range(20)]
    tabs = await asyncio.gather(
        *(tab(layer, "now:2", user) for user in users for layer in (a, b))
    )
    await watcher.until(lambda w: len(w.present) == 21)
    owners = [a, b] * len(users)
    closing = [i for i in range(len(tabs)) if i < 20 or i % 2 == 0]
    await asyncio.gather(*(owners[i].group_discard("now:2", tabs[i]) for i in closing))
    kept = {"watcher", *users[10:]}
    await watcher.until(lambda w: w.present.keys() == kept)
    assert (await b.group_presence("now:2")).keys() == kept
    assert await a.group_presence_stats("now:2") == PresenceStats(11, 11)
    leaves = [k for e in watcher.events[1:] for k in e["leaves"]]
    assert sorted(leaves) == sorted(users[:10])


async def test_presence_and_stats_without_events(layers):
    """Every membership has presence; a second add replaces its meta; no events."""
    a, b = layers
    one = await a.new_channel()
    await a.group_add("plain", one, meta={"user": "A", "v": 1})
    await b.group_add("plain", await b.new_channel(), meta={"user": "A"})
    await b.group_add("plain", await b.new_channel())
    await a.group_add("plain", one, meta={"user": "A", "v": 2})
    presence = await a.group_presence("plain")
    assert sorted(presence["A"], key=len) == [{"user": "A"}, {"user": "A", "v": 2}]
    assert len(presence) == 2
    assert await b.group_presence_stats("plain") == PresenceStats(3, 2)
    await a.group_discard("plain", one)
    assert await b.group_presence_stats("plain") == PresenceStats(2, 2)
    with pytest.raises(TypeError, match="presence metadata"):
        await a.group_add("plain", one, meta={"user": 5})


async def test_members_without_metadata_store_nothing_and_read_alike(layers):
    """Without events a membership without metadata writes no presence entry:
    every instance names it by the same anonymous key from group_members, and a
    second add without metadata takes an older entry out."""
    a, b = layers
    one, two = await a.new_channel(), await b.new_channel()
    await a.group_add("plain", one)
    await b.group_add("plain", two, meta={"user": "B"})
    client = a._connections.command_client("g.plain")
    pc = f"{a.prefix}:{{g.plain}}:pc"
    assert await client.hlen(pc) == 1  # B's only
    seen_by_a, seen_by_b = (
        await a.group_presence("plain"),
        await b.group_presence("plain"),
    )
    assert seen_by_a == seen_by_b
    (anon,) = [key for key in seen_by_a if key != "B"]
    assert anon.startswith("anon-")
    assert seen_by_a[anon] == [{}]
    await b.group_add("plain", two)  # metadata gone: so is its entry
    assert await client.hlen(pc) == 0
    assert await a.group_presence_stats("plain") == PresenceStats(2, 2)
    assert await a.group_presence("plain") == await b.group_presence("plain")
    await a.group_discard("plain", one)
    assert list((await b.group_presence("plain")).values()) == [[{}]]


async def test_anonymous_keys_never_name_the_channel(layers):
    a, b = layers
    watcher = await Watcher(a, "room:5").join({"user": "watcher"})
    anon = await tab(b, "room:5", None)
    sign, key = await watcher.next_change()
    assert sign == "+"
    assert key.startswith("anon-")
    presence = await a.group_presence("room:5")
    text = json.dumps([watcher.events, presence])
    # The channel's name, its process-and-token tail, and its process id: none
    # appears (a short token such as "1" alone could be in any metadata).
    tail = anon.split(".")[-1]
    for part in (anon, tail, tail.split("!")[0]):
        assert part not in text


async def test_flush_clears_presence(layers):
    a, b = layers
    await a.group_add("room:6", await a.new_channel(), meta={"user": "A"})
    await a.flush()
    assert await b.group_presence("room:6") == {}
    assert [k async for k in _keys(a.prefix)] == []


async def _keys(prefix: str):
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}:*g.*"):
            yield key
    finally:
        await client.aclose()


# A crashed process: kill -9


def run_holder(prefix: str, conn: Any) -> None:
    """The other process: user B's only connection in room:9, then waits."""
    asyncio.run(_holder(prefix, conn))


async def _holder(prefix: str, conn: Any) -> None:
    layer = new_layer(prefix, presence_timeout=2)
    channel = await tab(layer, "room:9", "B")
    await layer.group_add("plain:9", channel, meta={"user": "B"})
    conn.send(channel)
    while True:  # its own state first, then the others' changes
        await layer.receive(channel)


async def test_kill_9_gives_exactly_one_leave_within_presence_timeout():
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    a, b = new_layer(prefix, presence_timeout=2), new_layer(prefix, presence_timeout=2)
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=run_holder, args=(prefix, child)
    )
    process.start()
    try:
        watchers = [
            await Watcher(a, "room:9").join({"user": "wa"}),
            await Watcher(b, "room:9").join({"user": "wb"}),
        ]
        await pipe_recv(parent, within=20)
        for watcher in watchers:
            await watcher.until(lambda w: "B" in w.present)
        os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        for watcher in watchers:
            assert await watcher.next_change(5) == ("-", "B")
        assert time.monotonic() - killed <= 2 + 1
        await tab(b, "room:9", "M")  # anything after the leave comes after this
        for watcher in watchers:
            assert await watcher.next_change() == ("+", "M")
            leaves = [k for e in watcher.events for k in e.get("leaves", ())]
            assert leaves == ["B"]
        assert "B" not in await a.group_presence("room:9")
        assert await a.group_presence("plain:9") == {}  # and a reader prunes it:
        client = a._connections.command_client("g.plain:9")
        assert await client.hlen(f"{prefix}:{{g.plain:9}}:pc") == 0
    finally:
        for layer in (a, b):
            await layer.close()
        await stop_and_clean(process, prefix)


# Redis lost everything; Redis Cluster


@pytest.mark.faults
@pytest.mark.parametrize("loss", ["flushall", "restart"])
async def test_lost_redis_data_comes_back_with_no_leaves_or_joins(loss):
    """Redis flushed, or restarted empty: memberships and their metadata are
    written again; clients see no leave and no join."""
    with redis_server() as server:
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        a = new_layer(prefix, server.url, presence_timeout=1)
        b = new_layer(prefix, server.url, presence_timeout=1)
        try:
            watcher = await Watcher(a, "room:r").join({"user": "watcher"})
            await tab(a, "room:r", "A")
            await tab(b, "room:r", "B")
            await a.group_add("plain", await a.new_channel(), meta={"user": "P"})
            await watcher.until(lambda w: w.present.keys() == {"watcher", "A", "B"})
            before = await b.group_presence("room:r")
            if loss == "flushall":
                server.client().flushall()
            else:
                server.stop()
                server.start()  # same port, empty

            async def restored() -> tuple[bool, Any]:
                try:
                    plain = await b.group_presence("plain")
                    room = await b.group_presence("room:r")
                except MemberUnreachable as exc:  # the first call after a restart
                    return False, exc
                done = plain == {"P": [{"user": "P"}]} and room == before
                return done, (plain, room)

            await until(restored, 10, "presence back in Redis")
            await tab(b, "room:r", "M")
            assert await watcher.next_change() == ("+", "M")
            assert watcher.changes == [("+", "A"), ("+", "B"), ("+", "M")]
        finally:
            for layer in (a, b):
                await layer.close()


@pytest.mark.faults
async def test_a_join_during_an_outage_gets_its_state_once_redis_is_back():
    with redis_server() as server:
        layer = new_layer(f"test-{uuid.uuid4().hex[:12]}", server.url)
        try:
            channel = await layer.new_channel()
            server.stop()
            await layer.group_add("room:o", channel, meta={"user": "O"})  # no raise
            server.start()  # same port, empty
            async with asyncio.timeout(10):
                state = await layer.receive(channel)
            assert state["type"] == "aether.presence_state"
            assert state["presence"] == {"O": [{"user": "O"}]}
        finally:
            await layer.close()


async def test_presence_events_on_a_cluster(cluster):
    hosts = [{"address": cluster[0].url, "cluster": True}]
    groups = [f"room:c{i}" for i in range(3)]  # every node
    await three_tabs_on(hosts, groups, flush=True)  # the cluster serves the module


@pytest.fixture(scope="module")
def cluster():
    with redis_cluster(3) as servers:
        yield servers
