"""The in-memory layer's presence (docs/presence.md): metadata per membership, the
state handed on join, diffs de-duplicated per user, batched, with a grace period
for the last leave, and no change lost or repeated at the seam between the two."""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aether_compat import Channels
from aether_compat.layers import InMemoryChannelLayer
from aether_compat.presence import (
    DIFF_WINDOW,
    MAX_META_BYTES,
    PRESENCE_DIFF,
    PRESENCE_STATE,
    PresenceStats,
)

LayerFactory = Callable[..., InMemoryChannelLayer]


@pytest.fixture
async def make() -> AsyncIterator[LayerFactory]:
    """Layers whose "room:*" groups have presence events; closed at the end."""
    made: list[InMemoryChannelLayer] = []

    def factory(grace: float = 5.0, **config: Any) -> InMemoryChannelLayer:
        options = {"presence_events": True, "presence_grace": grace}
        layer = InMemoryChannelLayer(group_options={"room:*": options}, **config)
        made.append(layer)
        return layer

    yield factory
    for layer in made:
        await layer.flush()
        await layer.close()


async def next_event(layer: InMemoryChannelLayer, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return await layer.receive(channel)


async def join(
    layer: InMemoryChannelLayer, group: str, meta: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """A new channel joined to `group`; returns it and the state it was handed."""
    channel = await layer.new_channel()
    await layer.group_add(group, channel, meta=meta)
    state = await next_event(layer, channel)
    assert state["type"] == PRESENCE_STATE
    return channel, state


async def marked_diff(
    layer: InMemoryChannelLayer, watcher: str, group: str, marker: str
) -> dict[str, Any]:
    """Join the user `marker` and return the watcher's next diff: whatever it holds
    besides the marker's join was sent after the steps before this call."""
    await join(layer, group, {"user": marker})
    diff = await next_event(layer, watcher)
    assert diff["type"] == PRESENCE_DIFF
    assert marker in diff["joins"], diff
    return diff


def clock_threads() -> int:
    return sum(t.name == "aether-presence" for t in threading.enumerate())


def user(name: str) -> dict[str, Any]:
    return {"user": name, "name": name.title()}


async def test_the_joiner_gets_the_state_with_itself_and_the_others(make):
    layer = make()
    first, state = await join(layer, "room:a", user("alice"))
    assert state["presence"] == {"alice": [user("alice")]}
    assert state["group"] == "room:a"
    await marked_diff(layer, first, "room:a", "bob")
    _, state = await join(layer, "room:a", user("carol"))
    assert state["presence"] == {
        "alice": [user("alice")],
        "bob": [{"user": "bob"}],
        "carol": [user("carol")],
    }


async def test_a_second_tab_sends_no_join_and_closing_it_no_leave(make):
    layer = make(grace=0)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    first, _ = await join(layer, "room:a", user("alice"))
    diff = await next_event(layer, watcher)
    assert diff["joins"] == {"alice": [user("alice")]}
    second, state = await join(layer, "room:a", user("alice"))
    assert state["presence"]["alice"] == [user("alice"), user("alice")]
    await layer.group_discard("room:a", second)
    diff = await marked_diff(layer, watcher, "room:a", "marker")
    assert diff["joins"].keys() == {"marker"}
    assert diff["leaves"] == {}
    await layer.group_discard("room:a", first)
    diff = await next_event(layer, watcher)
    assert diff["leaves"] == {"alice": [user("alice")]}
    assert diff["joins"] == {}


async def test_the_last_leave_waits_for_the_grace_period(make):
    layer = make(grace=0.3)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    alice, _ = await join(layer, "room:a", user("alice"))
    assert (await next_event(layer, watcher))["joins"].keys() == {"alice"}
    left = asyncio.get_running_loop().time()
    await layer.group_discard("room:a", alice)
    diff = await next_event(layer, watcher)
    waited = asyncio.get_running_loop().time() - left
    assert diff["leaves"] == {"alice": [user("alice")]}
    assert waited >= 0.3


async def test_a_rejoin_within_the_grace_period_announces_nothing(make):
    layer = make(grace=30)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    alice, _ = await join(layer, "room:a", user("alice"))
    assert (await next_event(layer, watcher))["joins"].keys() == {"alice"}
    await layer.group_discard("room:a", alice)
    _, state = await join(layer, "room:a", user("alice"))  # the reload
    assert state["presence"].keys() == {"watcher", "alice"}
    diff = await marked_diff(layer, watcher, "room:a", "marker")
    assert diff["joins"].keys() == {"marker"}
    assert diff["leaves"] == {}


async def test_a_user_in_grace_stays_in_the_state_of_new_joiners(make):
    layer = make(grace=30)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    alice, _ = await join(layer, "room:a", user("alice"))
    assert (await next_event(layer, watcher))["joins"].keys() == {"alice"}
    await layer.group_discard("room:a", alice)
    _, state = await join(layer, "room:a", user("bob"))
    assert state["presence"]["alice"] == [user("alice")]
    assert await layer.group_presence("room:a") == {
        "watcher": [user("watcher")],
        "bob": [user("bob")],
    }


async def test_changes_within_one_window_go_out_as_one_diff(make):
    layer = make(grace=0)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    await marked_diff(layer, watcher, "room:a", "marker")  # no window is open now
    loop = asyncio.get_running_loop()
    started = loop.time()
    channels = []
    for n in range(20):
        channel = await layer.new_channel()
        await layer.group_add("room:a", channel, meta=user(f"u{n}"))
        channels.append(channel)
    elapsed = loop.time() - started
    seen: set[str] = set()
    diffs = 0
    while seen != {f"u{n}" for n in range(20)}:
        diff = await next_event(layer, watcher)
        seen |= diff["joins"].keys()
        diffs += 1
    if elapsed < DIFF_WINDOW:  # all in the first window: one diff, always
        assert diffs == 1
    assert diffs <= 1 + int(elapsed / DIFF_WINDOW)


async def test_a_join_and_leave_within_one_window_cancel_out(make):
    layer = make(grace=0)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    channel = await layer.new_channel()
    await layer.group_add("room:a", channel, meta=user("flash"))
    await layer.group_discard("room:a", channel)
    diff = await marked_diff(layer, watcher, "room:a", "marker")
    assert "flash" not in diff["joins"]
    assert "flash" not in diff["leaves"]


async def test_the_joiner_never_gets_its_own_join_in_a_diff(make):
    layer = make(grace=0)
    await join(layer, "room:a", user("watcher"))
    alice, state = await join(layer, "room:a", user("alice"))
    assert "alice" in state["presence"]
    await join(layer, "room:a", user("marker"))
    joins: set[str] = set()
    while "marker" not in joins:
        joins |= (await next_event(layer, alice))["joins"].keys()
    assert "alice" not in joins


async def test_timers_fire_after_the_loop_that_set_them_ended(make):
    """A join and a leave from a short-lived loop (as through async_to_sync): the
    diff window and the grace period still end, on the layer's clock."""
    layer = make(grace=0.2)
    watcher, _ = await join(layer, "room:a", user("watcher"))

    async def come_and_go() -> None:
        channel = await layer.new_channel()
        await layer.group_add("room:a", channel, meta=user("brief"))
        await layer.group_discard("room:a", channel)

    await asyncio.to_thread(asyncio.run, come_and_go())
    assert (await next_event(layer, watcher))["joins"].keys() == {"brief"}
    assert (await next_event(layer, watcher))["leaves"].keys() == {"brief"}


async def test_anonymous_keys_are_opaque(make):
    layer = make()
    channel, state = await join(layer, "room:a", {"connected_at": 1})
    (key,) = state["presence"]
    assert key.startswith("anon-")
    client = channel.split(".")[1].split("!")[0]  # the layer's random part
    assert channel not in key
    assert client not in key
    other, _ = await join(layer, "room:a")
    presence = await layer.group_presence("room:a")
    assert len(presence) == 2
    assert all(channel not in k and other not in k for k in presence)


async def test_stats_count_connections_and_distinct_users(make):
    layer = make()
    for meta in [user("alice")] * 3 + [user("bob"), None, {"connected_at": 5}]:
        await join(layer, "room:a", meta)
    assert await layer.group_presence_stats("room:a") == PresenceStats(6, 4)
    presence = await layer.group_presence("room:a")
    assert len(presence["alice"]) == 3
    assert sum(key.startswith("anon-") for key in presence) == 2


async def test_every_group_has_presence_but_only_opted_in_ones_get_events(make):
    layer = make()
    channel = await layer.new_channel()
    await layer.group_add("plain", channel, meta=user("alice"))
    await layer.group_add("plain", await layer.new_channel())
    assert (await layer.group_presence("plain"))["alice"] == [user("alice")]
    assert await layer.group_presence_stats("plain") == PresenceStats(2, 2)
    await layer.group_send("plain", {"type": "probe"})
    assert (await next_event(layer, channel))["type"] == "probe"


async def test_a_second_group_add_replaces_the_metadata(make):
    layer = make(grace=0)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    channel = await layer.new_channel()
    await layer.group_add("room:a", channel, meta={"user": "x", "device": "phone"})
    await layer.group_add("room:a", channel, meta={"user": "x", "device": "laptop"})
    presence = await layer.group_presence("room:a")
    assert presence["x"] == [{"user": "x", "device": "laptop"}]
    await layer.group_add("room:a", channel, meta={"user": "y"})
    assert (await layer.group_presence("room:a")).keys() == {"watcher", "y"}
    diff = await marked_diff(layer, watcher, "room:a", "marker")
    assert diff["joins"].keys() == {"marker", "y"}
    assert "x" not in diff["leaves"]  # x joined and left within one window


@pytest.mark.parametrize(
    ("meta", "rule"),
    [
        pytest.param([("user", "a")], "must be a dict", id="not-a-dict"),
        pytest.param({1: "a"}, "str keys", id="int-key"),
        pytest.param({"user": ""}, "non-empty str", id="empty-user"),
        pytest.param({"user": 7}, "non-empty str", id="int-user"),
        pytest.param({"x": object()}, "msgpack", id="not-encodable"),
        pytest.param({"x": "y" * MAX_META_BYTES}, "at most", id="too-big"),
    ],
)
async def test_bad_metadata_is_a_type_error_naming_the_rule(make, meta, rule):
    layer = make()
    channel = await layer.new_channel()
    with pytest.raises(TypeError, match=rule):
        await layer.group_add("room:a", channel, meta=meta)
    assert await layer.group_members("room:a") == set()


async def test_an_expired_membership_is_announced_as_a_leave(make):
    layer = make(grace=0, group_expiry=0.5)
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watcher = await layer.new_channel()
    await layer.register_session(watcher, got.put)  # sessions never expire
    await layer.group_add("room:a", watcher, meta=user("watcher"))
    assert (await asyncio.wait_for(got.get(), 5))["type"] == PRESENCE_STATE
    await join(layer, "room:a", user("stale"))
    diff = await asyncio.wait_for(got.get(), 5)
    assert diff["joins"].keys() == {"stale"}
    diff = await asyncio.wait_for(got.get(), 5)
    assert diff["leaves"].keys() == {"stale"}
    await layer.unregister_session(watcher)


async def test_a_channel_whose_reader_stopped_leaves(make):
    layer = make(grace=0, expiry=0.3)
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watcher = await layer.new_channel()
    await layer.register_session(watcher, got.put)
    await layer.group_add("room:a", watcher, meta=user("watcher"))
    await asyncio.wait_for(got.get(), 5)
    await join(layer, "room:a", user("quitter"))  # read its state, then stops
    assert (await asyncio.wait_for(got.get(), 5))["joins"].keys() == {"quitter"}
    await join(layer, "room:a", user("bob"))  # a diff the quitter never reads
    assert (await asyncio.wait_for(got.get(), 5))["joins"].keys() == {"bob"}
    diff = await asyncio.wait_for(got.get(), 5)
    assert diff["leaves"].keys() == {"quitter"}
    await layer.unregister_session(watcher)


class View:
    """A member's view built from its events as the `_seq` contract says: diffs
    before the state are held, those the state holds are dropped; a join of a key
    it has or a leave of one it lacks is a change counted twice."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.keys: set[str] = set()
        self.early: list[dict[str, Any]] = []

    def take(self, event: dict[str, Any]) -> None:
        if event["type"] == PRESENCE_STATE:
            self.seq, self.keys = event["_seq"], set(event["presence"])
            early, self.early = self.early, []
            for diff in early:
                self.take(diff)
        elif self.seq is None:
            self.early.append(event)
        else:
            numbers = event["_seqs"]
            for key in event["leaves"]:
                if numbers["-" + key] > self.seq:
                    assert key in self.keys, f"leave of {key} it never had"
                    self.keys.remove(key)
            for key in event["joins"]:
                if numbers["+" + key] > self.seq:
                    assert key not in self.keys, f"join of {key} it had already"
                    self.keys.add(key)


async def test_no_change_falls_between_the_state_and_the_first_diff(make):
    """Members join from four threads' loops while others come and go; every
    member's state plus its diffs ends exactly at the group's presence."""
    layer = make(grace=0)
    views: dict[str, View] = {}
    members: list[str] = []
    lock = threading.Lock()

    async def churn(worker: int) -> None:
        for n in range(15):
            channel = await layer.new_channel()
            with lock:
                views[channel] = View()
                members.append(channel)
            await layer.group_add("room:seam", channel, meta=user(f"w{worker}-{n}"))
            if n % 3 == 2:
                await layer.group_add("room:seam", await layer.new_channel())
                await layer.group_discard("room:seam", channel)
                with lock:
                    members.remove(channel)

    threads = [threading.Thread(target=asyncio.run, args=(churn(w),)) for w in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [thread.join() for thread in threads])
    final = set(await layer.group_presence("room:seam"))
    assert len(final) == 4 * 15
    for channel in members:
        view = views[channel]
        while view.keys != final or view.seq is None:
            view.take(await next_event(layer, channel))


async def test_presence_through_the_facade_and_its_sync_twin(make):
    layer = make()
    Channels.configure(layer)
    channel = await layer.new_channel()
    await Channels.group_add("room:f", channel, meta=user("alice"))
    group = Channels.group("room:f")
    assert await group.presence() == {"alice": [user("alice")]}
    assert await group.presence_stats() == PresenceStats(1, 1)

    def from_a_thread() -> tuple[Any, Any]:
        Channels.sync.group_add("room:f", "other", {"user": "bob"})
        sync = Channels.sync.group("room:f")
        return sync.presence(), sync.presence_stats()

    presence, stats = await asyncio.to_thread(from_a_thread)
    assert presence.keys() == {"alice", "bob"}
    assert stats == PresenceStats(2, 2)
    with pytest.raises(TypeError, match="must be a dict"):
        await Channels.group_add("room:f", channel, meta="alice")


async def test_close_stops_the_clock_and_a_later_use_restarts_it(make):
    layer = make(grace=0)
    watcher, _ = await join(layer, "room:a", user("watcher"))
    clocks = clock_threads()
    await layer.close()
    assert clock_threads() == clocks - 1
    await marked_diff(layer, watcher, "room:a", "marker")
