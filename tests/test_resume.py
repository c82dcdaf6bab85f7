"""AetherConsumer resume through WebsocketCommunicator: a join with `since`
replays exactly the gap after the `aether.joined` reply, or nothing with
recovered false; groups joined on connect resume from `?since=`; live messages
during a resume come after the replay with no gap and no duplicate.

`BACKENDS` names the layers these run on: add "redis" once its history is in."""

import asyncio
import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from aether_compat.layers import InMemoryChannelLayer
from aether_compat.limits import Limits
from tests.support import communicator
from tests.support.communicator import frame
from tests.support.facade import as_default_layer
from tests.support.layers import build_layer

ALICE = User(pk=1, username="alice")
V1 = "aether.v1"
GROUP_OPTIONS = {
    "room:*": {"history_size": 100, "history_ttl": 300},
    "chat:last-*": {"history_size": 1, "history_ttl": 300, "last_on_join": True},
}
BACKENDS = ["memory"]


class Consumer(AetherConsumer):
    """Joins the groups the test names on connect; takes commands quickly."""

    def get_groups(self) -> list[str]:
        return list(self.scope["url_route"]["kwargs"]["groups"])

    def get_limits(self) -> Limits:
        return Limits(commands_per_second=1000, command_burst=1000)


@pytest.fixture(params=BACKENDS)
async def hlayer(request):
    layer = build_layer(request.param, group_options=GROUP_OPTIONS)
    with as_default_layer(layer):
        Channels.configure(layer)
        yield layer
    await layer.flush()
    await layer.close()


async def open_ws(query: str = "", groups=(), subprotocols=(V1,)):
    return await communicator.open_ws(
        Consumer, ALICE, "/ws/" + query, groups, subprotocols
    )


async def ask(ws, **command):
    await ws.send_to(text_data=json.dumps(command))
    return await frame(ws)


async def say(group: str, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await Channels.group(group).broadcast(f"m{n}")


async def position(group: str) -> dict[str, Any]:
    history = await Channels.group(group).history()
    return {"epoch": history.epoch, "offset": history.offset}


async def test_a_join_with_since_replays_exactly_the_gap_after_the_reply(hlayer):
    await say("room:a", 3)
    seen = await position("room:a")
    await say("room:a", 4, start=3)
    ws = await open_ws()
    joined = await ask(ws, action="join", group="room:a", since=seen, ref=1)
    assert joined == {
        "type": "aether.joined",
        "ref": 1,
        "group": "room:a",
        "recovered": True,
        "epoch": seen["epoch"],
        "offset": 7,
    }
    replay = [await frame(ws) for _ in range(4)]
    assert [(m["data"], m["offset"], m["epoch"]) for m in replay] == [
        (f"m{n}", n + 1, seen["epoch"]) for n in range(3, 7)
    ]
    await say("room:a", 1, start=7)
    live = await frame(ws)
    assert (live["data"], live["offset"]) == ("m7", 8)
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_a_gap_no_longer_in_history_replays_nothing(hlayer):
    await say("room:a", 1)
    seen = await position("room:a")
    await say("room:a", 101, start=1)
    ws = await open_ws()
    joined = await ask(ws, action="join", group="room:a", since=seen)
    assert (joined["recovered"], joined["offset"]) == (False, 102)
    await say("room:a", 1, start=102)
    assert (await frame(ws))["offset"] == 103
    await ws.disconnect()


async def test_another_epoch_replays_nothing(hlayer):
    await say("room:a", 2)
    ws = await open_ws()
    since = {"epoch": "not-this-one", "offset": 1}
    joined = await ask(ws, action="join", group="room:a", since=since)
    assert joined["recovered"] is False
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_a_join_without_since_tells_the_position(hlayer):
    await say("room:a", 2)
    ws = await open_ws()
    joined = await ask(ws, action="join", group="room:a")
    assert (joined["recovered"], joined["offset"]) == (None, 2)
    assert joined["epoch"] == (await position("room:a"))["epoch"]
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_a_group_without_history_says_recovered_false_to_a_since(hlayer):
    ws = await open_ws()
    joined = await ask(
        ws, action="join", group="chat:plain", since={"epoch": "e", "offset": 3}
    )
    assert (joined["recovered"], joined["epoch"], joined["offset"]) == (
        False,
        None,
        None,
    )
    await ws.disconnect()


@pytest.mark.parametrize(
    "since",
    [
        pytest.param({"epoch": "e"}, id="no-offset"),
        pytest.param({"epoch": "", "offset": 1}, id="empty-epoch"),
        pytest.param({"epoch": "e", "offset": -1}, id="negative"),
        pytest.param({"epoch": "e", "offset": 1.5}, id="float"),
        pytest.param({"epoch": "e", "offset": 1, "x": 1}, id="extra-key"),
        pytest.param([1, 2], id="array"),
    ],
)
async def test_a_bad_since_is_an_error(hlayer, since):
    ws = await open_ws()
    error = await ask(ws, action="join", group="room:a", since=since, ref=4)
    assert (error["type"], error["code"], error["ref"]) == (
        "aether.error",
        "invalid_since",
        4,
    )
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_groups_joined_on_connect_resume_from_the_query_string(hlayer):
    await say("room:a", 2)
    seen = await position("room:a")
    await say("room:a", 3, start=2)
    query = f"?since=room:a:{seen['epoch']}:{seen['offset']},room:b:x:1"
    ws = await open_ws(query, groups=["room:a", "room:b", "chat:plain"])
    joined = await frame(ws)
    assert joined == {
        "type": "aether.joined",
        "ref": None,
        "group": "room:a",
        "recovered": True,
        "epoch": seen["epoch"],
        "offset": 5,
    }
    assert [(await frame(ws))["data"] for _ in range(3)] == ["m2", "m3", "m4"]
    other = await frame(ws)
    assert (other["group"], other["recovered"], other["offset"]) == (
        "room:b",
        False,
        0,
    )
    assert await ws.receive_nothing(0.05)  # chat:plain keeps no history: no frame
    await ws.disconnect()


async def test_a_bad_position_in_the_query_string_says_recovered_false(hlayer):
    ws = await open_ws("?since=room:a:epoch:x", groups=["room:a"])
    joined = await frame(ws)
    assert (joined["group"], joined["recovered"]) == ("room:a", False)
    await ws.disconnect()


async def test_a_late_joiner_gets_the_last_message_after_its_position(hlayer):
    await say("chat:last-stats", 3)
    ws = await open_ws(groups=["chat:last-stats"])
    joined = await frame(ws)
    assert (joined["group"], joined["recovered"], joined["offset"]) == (
        "chat:last-stats",
        None,
        3,
    )
    last = await frame(ws)
    assert (last["data"], last["offset"]) == ("m2", 3)
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_a_late_joiner_by_command_gets_the_last_message(hlayer):
    await say("chat:last-stats", 2)
    ws = await open_ws()
    assert (await ask(ws, action="join", group="chat:last-stats"))["offset"] == 2
    assert (await frame(ws))["data"] == "m1"
    await ws.disconnect()


async def test_a_legacy_client_resumes_with_raw_text(hlayer):
    await say("room:a", 1)
    seen = await position("room:a")
    await say("room:a", 2, start=1)
    ws = await open_ws(subprotocols=())
    await ws.send_to(
        text_data=json.dumps({"action": "join", "group": "room:a", "since": seen})
    )
    reply = await frame(ws)
    assert reply["type"] == "aether.joined"
    assert json.loads(reply["payload"]) == {
        "group": "room:a",
        "recovered": True,
        "epoch": seen["epoch"],
        "offset": 3,
    }
    assert [await frame(ws) for _ in range(2)] == ["m1", "m2"]
    await ws.disconnect()


async def until(ws, kind: str, offsets: list[int]) -> dict[str, Any]:
    """The next frame of type `kind`; the offsets of messages before it are kept."""
    while (got := await frame(ws))["type"] != kind:
        assert got["type"] == "aether.message", got
        offsets.append(got["offset"])
    return got


async def test_resumes_during_a_broadcast_have_no_gap_and_no_duplicate(hlayer):
    """A sender broadcasts without pause while one client leaves and joins again
    with its last position, 20 times: it sees every offset once, in order."""
    ws = await open_ws()
    await ask(ws, action="join", group="room:a")
    stop = asyncio.Event()

    async def sender() -> None:
        n = 0
        while not stop.is_set():
            await Channels.group("room:a").broadcast(f"m{n}")
            n += 1
            await asyncio.sleep(0.001)  # ~1,000 a second: the pace, not a wait

    task = asyncio.create_task(sender())
    offsets: list[int] = []
    try:
        for _ in range(20):
            while len(offsets) < 10 or offsets[-1] % 7:
                offsets.append((await frame(ws))["offset"])
            await ws.send_to(
                text_data=json.dumps({"action": "leave", "group": "room:a"})
            )
            await until(ws, "aether.left", offsets)
            since = {
                "epoch": (await position("room:a"))["epoch"],
                "offset": offsets[-1],
            }
            join = {"action": "join", "group": "room:a", "since": since}
            await ws.send_to(text_data=json.dumps(join))
            joined = await until(ws, "aether.joined", offsets)
            assert joined["recovered"] is True, (joined, since)
            offsets.append((await frame(ws))["offset"])
    finally:
        stop.set()
        await task
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    await ws.disconnect()


class BusyLayer(InMemoryChannelLayer):
    """Broadcasts while a history read is under way: two messages land before the
    read (in history and delivered live), one after it (delivered live only)."""

    busy = False

    async def group_history(self, group, **kwargs):
        if not self.busy:
            return await super().group_history(group, **kwargs)
        await say(group, 2, start=100)
        history = await super().group_history(group, **kwargs)
        await say(group, 1, start=200)
        return history


async def test_live_messages_during_the_history_read_are_held_then_deduplicated():
    layer = BusyLayer(group_options=GROUP_OPTIONS)
    with as_default_layer(layer):
        Channels.configure(layer)
        await say("room:a", 2)
        seen = await position("room:a")
        await say("room:a", 1, start=2)
        ws = await open_ws()
        layer.busy = True
        joined = await ask(ws, action="join", group="room:a", since=seen)
        assert (joined["recovered"], joined["offset"]) == (True, 5)
        frames = [await frame(ws) for _ in range(4)]
        assert [(m["data"], m["offset"]) for m in frames] == [
            ("m2", 3),
            ("m100", 4),
            ("m101", 5),
            ("m200", 6),
        ]
        assert await ws.receive_nothing(0.05)
        await ws.disconnect()


async def test_a_late_live_copy_of_a_replayed_message_is_dropped(hlayer):
    """A live message the replay already had (its offset was given before the
    history read, it reached the connection after it) is not sent twice."""
    await say("room:a", 1)
    seen = await position("room:a")
    await say("room:a", 2, start=1)
    ws = await open_ws()
    joined = await ask(ws, action="join", group="room:a", since=seen)
    assert [(await frame(ws))["offset"] for _ in range(2)] == [2, 3]
    (channel,) = await hlayer.group_members("room:a")
    late = {"type": "aether.message", "text": "m2", "group": "room:a"}
    await hlayer.send(channel, {**late, "offset": 3, "epoch": joined["epoch"]})
    await say("room:a", 1, start=3)
    assert (await frame(ws))["offset"] == 4
    await ws.disconnect()


async def test_a_legacy_client_resumes_a_connect_group_from_the_query_string(hlayer):
    await say("room:a", 1)
    seen = await position("room:a")
    await say("room:a", 1, start=1)
    query = f"?since=room:a:{seen['epoch']}:{seen['offset']}"
    ws = await open_ws(query, groups=["room:a"], subprotocols=())
    reply = await frame(ws)
    assert json.loads(reply["payload"])["recovered"] is True
    assert await frame(ws) == "m1"
    await ws.disconnect()


async def test_a_legacy_client_without_since_gets_no_extra_frame_on_connect(hlayer):
    await say("room:a", 1)
    ws = await open_ws(groups=["room:a"], subprotocols=())
    assert await ws.receive_nothing(0.05)
    await ws.disconnect()


async def test_resumes_are_counted_in_the_metrics(hlayer):
    """`aether_history_resumes_total{recovered}` and the replayed messages move
    with each resume (the process's own metrics: see docs/operations.md)."""
    from prometheus_client import REGISTRY

    from aether_compat import metrics

    assert metrics.active() is not None

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    recovered = sample("aether_history_resumes_total", recovered="true")
    lost = sample("aether_history_resumes_total", recovered="false")
    replayed = sample("aether_history_replayed_messages_total")
    await say("room:m", 1)
    seen = await position("room:m")
    await say("room:m", 2, start=1)
    ws = await open_ws()
    assert (await ask(ws, action="join", group="room:m", since=seen))["recovered"]
    assert [await frame(ws) for _ in range(2)]
    gone = {"epoch": "other", "offset": 1}
    assert not (await ask(ws, action="join", group="room:n", since=gone))["recovered"]
    await ws.disconnect()
    assert sample("aether_history_resumes_total", recovered="true") == recovered + 1
    assert sample("aether_history_resumes_total", recovered="false") == lost + 1
    assert sample("aether_history_replayed_messages_total") == replayed + 2
