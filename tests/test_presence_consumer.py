"""AetherConsumer and presence through WebsocketCommunicator: the metadata hook on
every join (connect groups, join commands, resuming joins), state and diff frames
without internal keys, one join per user across tabs, and legacy clients left
without presence frames."""

import asyncio
import json
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from aether_compat.layers import InMemoryChannelLayer
from aether_compat.limits import Limits
from aether_compat.presence import DIFF_WINDOW, PresenceStats
from tests.support import communicator
from tests.support.communicator import frame
from tests.support.facade import as_default_layer
from tests.support.schema import assert_server_frames

ALICE = User(pk=1, username="alice")
BOB = User(pk=2, username="bob")
V1 = "aether.v1"
GROUP_OPTIONS = {
    "room:hist-*": {
        "presence_events": True,
        "presence_grace": 0,
        "history_size": 10,
        "history_ttl": 60,
    },
    "room:lobby-*": {"presence_events": True, "presence_grace": 30},
    "room:*": {"presence_events": True, "presence_grace": 0},
}


class Consumer(AetherConsumer):
    """Joins the groups the test names on connect; takes commands quickly."""

    def get_groups(self) -> list[str]:
        return list(self.scope["url_route"]["kwargs"]["groups"])

    def get_limits(self) -> Limits:
        return Limits(commands_per_second=1000, command_burst=1000)


class DeviceConsumer(Consumer):
    def presence_meta(self, group: str) -> dict[str, Any] | None:
        return {"user": f"u{self.user.pk}", "device": "phone", "group": group}


@pytest.fixture
async def layer():
    made = InMemoryChannelLayer(group_options=GROUP_OPTIONS)
    with as_default_layer(made):
        Channels.configure(made)
        yield made
    await made.flush()
    await made.close()


async def open_ws(user=ALICE, groups=(), subprotocols=(V1,), consumer=Consumer):
    return await communicator.open_ws(
        consumer, user, groups=groups, subprotocols=subprotocols
    )


async def until(ws, kind: str) -> dict[str, Any]:
    """The next frame of type `kind`, skipping replies and pings."""
    while True:
        got = await frame(ws)
        if isinstance(got, dict) and got.get("type") == kind:
            return got


async def diff_with(ws, key: str) -> dict[str, Any]:
    """The next diff frame; it must hold `key` (the marker of a later step)."""
    diff = await until(ws, "aether.presence_diff")
    assert key in diff["joins"] or key in diff["leaves"], diff
    return diff


async def test_connect_groups_get_the_state_with_the_default_metadata(layer):
    ws = await open_ws(groups=["room:a"])
    state = await until(ws, "aether.presence_state")
    assert set(state) == {"type", "group", "presence"}
    (meta,) = state["presence"]["1"]
    assert meta["user"] == "1"
    assert meta["name"] == "alice"
    assert isinstance(meta["connected_at"], int)
    await ws.disconnect()


async def test_a_join_command_gets_its_reply_then_the_state(layer):
    ws = await open_ws()
    await ws.send_to(text_data=json.dumps({"action": "join", "group": "room:b"}))
    assert (await frame(ws))["type"] == "aether.joined"
    state = await frame(ws)
    assert state["type"] == "aether.presence_state"
    assert state["presence"].keys() == {"1"}
    await ws.disconnect()


async def test_a_resuming_join_uses_the_hook_too(layer):
    ws = await open_ws(consumer=DeviceConsumer)
    await ws.send_to(text_data=json.dumps({"action": "join", "group": "room:hist-c"}))
    state = await until(ws, "aether.presence_state")
    assert state["presence"] == {
        "u1": [{"user": "u1", "device": "phone", "group": "room:hist-c"}]
    }
    await ws.disconnect()


async def test_a_history_group_joined_on_connect_gets_its_position_then_state(layer):
    ws = await open_ws(groups=["room:hist-k"])
    joined = await frame(ws)
    assert (joined["type"], joined["ref"]) == ("aether.joined", None)
    state = await frame(ws)
    assert state["type"] == "aether.presence_state"
    assert state["presence"].keys() == {"1"}
    await ws.disconnect()


async def test_others_see_one_join_per_user_and_one_leave_after_the_last_tab(layer):
    alice = await open_ws(groups=["room:d"])
    await until(alice, "aether.presence_state")
    bob_tabs = [await open_ws(BOB, groups=["room:d"]) for _ in range(3)]
    diff = await diff_with(alice, "2")
    assert diff["joins"]["2"][0]["name"] == "bob"
    assert diff["leaves"] == {}
    for tab in bob_tabs[:2]:
        await tab.disconnect()
    carol = await open_ws(User(pk=3, username="carol"), groups=["room:d"])
    diff = await diff_with(alice, "3")
    assert diff["joins"].keys() == {"3"}
    assert diff["leaves"] == {}
    await bob_tabs[2].disconnect()
    diff = await diff_with(alice, "2")
    assert set(diff) == {"type", "group", "joins", "leaves"}
    assert diff["leaves"].keys() == {"2"}
    assert diff["joins"] == {}
    await carol.disconnect()
    await alice.disconnect()


async def test_a_reload_within_the_grace_period_sends_nothing(layer):
    alice = await open_ws(groups=["room:lobby-e"])
    await until(alice, "aether.presence_state")
    bob = await open_ws(BOB, groups=["room:lobby-e"])
    await diff_with(alice, "2")
    await bob.disconnect()
    bob = await open_ws(BOB, groups=["room:lobby-e"])  # the reload
    state = await until(bob, "aether.presence_state")
    assert state["presence"].keys() == {"1", "2"}
    carol = await open_ws(User(pk=3, username="carol"), groups=["room:lobby-e"])
    diff = await diff_with(alice, "3")
    assert diff == {"type": "aether.presence_diff", "group": "room:lobby-e",
                    "joins": {"3": diff["joins"]["3"]}, "leaves": {}}  # fmt: skip
    for ws in (alice, bob, carol):
        await ws.disconnect()


async def test_anonymous_members_appear_under_an_opaque_key(layer):
    alice = await open_ws(groups=["room:f"])
    await until(alice, "aether.presence_state")
    guest = await open_ws(AnonymousUser(), groups=["room:f"])
    diff = await until(alice, "aether.presence_diff")
    ((key, metas),) = diff["joins"].items()
    assert key.startswith("anon-")
    assert set(metas[0]) == {"connected_at"}
    await guest.disconnect()
    diff = await until(alice, "aether.presence_diff")
    assert diff["leaves"].keys() == {key}
    await alice.disconnect()


async def test_a_legacy_client_gets_no_presence_frames(layer):
    legacy = await open_ws(groups=["room:g"], subprotocols=())
    bob = await open_ws(BOB, groups=["room:g"])
    await until(bob, "aether.presence_state")
    await Channels.group("room:g").broadcast("after the joins")
    assert await frame(legacy) == "after the joins"
    presence = await Channels.group("room:g").presence()
    assert presence.keys() == {"1", "2"}
    await legacy.disconnect()
    await bob.disconnect()


async def test_a_member_that_left_gets_no_more_presence_frames(layer):
    alice = await open_ws()
    await alice.send_to(text_data=json.dumps({"action": "join", "group": "room:h"}))
    await until(alice, "aether.presence_state")
    await alice.send_to(text_data=json.dumps({"action": "leave", "group": "room:h"}))
    assert (await until(alice, "aether.left"))["group"] == "room:h"
    bob = await open_ws(BOB, groups=["room:h"])
    await until(bob, "aether.presence_state")
    await alice.send_to(text_data=json.dumps({"action": "ping", "ref": 1}))
    assert (await frame(alice))["type"] == "aether.pong"
    assert await Channels.group("room:h").presence_stats() == PresenceStats(1, 1)
    await alice.disconnect()
    await bob.disconnect()


async def test_presence_frames_validate_against_the_schema(layer):
    alice = await open_ws(groups=["room:j"])
    frames = [json.dumps(await until(alice, "aether.presence_state"))]
    bob = await open_ws(BOB, groups=["room:j"])
    frames.append(json.dumps(await until(alice, "aether.presence_diff")))
    await bob.disconnect()
    frames.append(json.dumps(await until(alice, "aether.presence_diff")))
    assert assert_server_frames(frames) == {
        "aether.presence_state",
        "aether.presence_diff",
    }
    await alice.disconnect()


async def test_many_joins_reach_a_member_as_few_frames_and_an_exact_map(layer):
    alice = await open_ws(groups=["room:i"])
    await until(alice, "aether.presence_state")
    users = [User(pk=10 + n, username=f"u{n}") for n in range(12)]
    started = asyncio.get_running_loop().time()
    sockets = await asyncio.gather(*(open_ws(u, groups=["room:i"]) for u in users))
    seen: set[str] = set()
    frames = 0
    while seen != {str(u.pk) for u in users}:
        seen |= (await until(alice, "aether.presence_diff"))["joins"].keys()
        frames += 1
    elapsed = asyncio.get_running_loop().time() - started
    assert frames <= 1 + elapsed / DIFF_WINDOW  # at most one frame per window
    for ws in sockets:
        await ws.disconnect()
    await alice.disconnect()
