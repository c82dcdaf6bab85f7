"""PresenceFrames, one connection's presence views: the `_seq` filter at the seam
between state and diffs, diffs held until their state, and at most one diff frame
per group per DIFF_WINDOW, with changes that cancel out left out."""

import asyncio
import json
from typing import Any

import pytest

from aether_compat.presence import DIFF_WINDOW
from aether_compat.presence_frames import PresenceFrames


class Socket:
    """What `write` was given, with the loop time of each frame."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self._more = asyncio.Event()

    def write(self, text: str) -> None:
        self.frames.append((asyncio.get_running_loop().time(), json.loads(text)))
        self._more.set()

    async def count(self, n: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(5):
            while len(self.frames) < n:
                self._more.clear()
                await self._more.wait()
        return [frame for _, frame in self.frames]


@pytest.fixture
def socket() -> Socket:
    return Socket()


@pytest.fixture
def frames(socket: Socket):
    made = PresenceFrames(socket.write)
    yield made
    made.close()


def state(seq: int, *keys: str) -> dict[str, Any]:
    presence = {key: [{"user": key}] for key in keys}
    return {"type": "aether.presence_state", "group": "g", "presence": presence,
            "_seq": seq}  # fmt: skip


def diff(seq: int, joins=(), leaves=()) -> dict[str, Any]:
    return {
        "type": "aether.presence_diff",
        "group": "g",
        "joins": {key: [{"user": key}] for key in joins},
        "leaves": {key: [{"user": key}] for key in leaves},
        "_seqs": {**{"+" + k: seq for k in joins}, **{"-" + k: seq for k in leaves}},
    }


async def test_the_state_frame_has_no_internal_keys(frames, socket):
    frames.expect("g")
    frames.state(state(4, "a"))
    assert await socket.count(1) == [
        {
            "type": "aether.presence_state",
            "group": "g",
            "presence": {"a": [{"user": "a"}]},
        }
    ]


async def test_diffs_the_state_holds_are_dropped(frames, socket):
    frames.expect("g")
    frames.state(state(4, "a"))
    frames.diff(diff(3, joins=["old"]))
    frames.diff(diff(4, joins=["a"]))
    frames.diff(diff(5, joins=["b"]))
    sent = await socket.count(2)
    assert sent[1] == {
        "type": "aether.presence_diff",
        "group": "g",
        "joins": {"b": [{"user": "b"}]},
        "leaves": {},
    }


async def test_events_without_seq_are_all_applied(frames, socket):
    frames.expect("g")
    frames.state({k: v for k, v in state(0, "a").items() if k != "_seq"})
    frames.diff({k: v for k, v in diff(0, joins=["b"]).items() if k != "_seqs"})
    assert (await socket.count(2))[1]["joins"].keys() == {"b"}


async def test_diffs_before_the_state_wait_for_it(frames, socket):
    frames.expect("g")
    frames.diff(diff(4, joins=["in-state"]))
    frames.diff(diff(5, joins=["later"]))
    assert socket.frames == []
    frames.state(state(4, "in-state"))
    sent = await socket.count(2)
    assert sent[0]["type"] == "aether.presence_state"
    assert sent[1]["joins"].keys() == {"later"}


async def test_a_diff_of_a_group_with_no_state_is_ignored(frames, socket):
    frames.diff(diff(1, joins=["x"]))
    frames.expect("g")
    frames.state(state(1, "y"))
    assert [f["presence"] for f in await socket.count(1)] == [{"y": [{"user": "y"}]}]


async def test_a_state_the_application_caused_is_followed(frames, socket):
    """Channels.group_add(group, consumer's channel): no join command, a state."""
    frames.state(state(3, "y"))
    frames.diff(diff(4, joins=["z"]))
    sent = await socket.count(2)
    assert sent[1]["joins"].keys() == {"z"}


async def test_a_state_that_arrives_after_leaving_is_dropped(frames, socket):
    frames.expect("g")
    frames.forget("g")
    frames.state(state(3, "y"))
    frames.expect("g")
    frames.state(state(4, "y", "z"))
    sent = await socket.count(1)
    assert sent[0]["presence"].keys() == {"y", "z"}
    assert len(socket.frames) == 1


async def test_diffs_within_a_window_go_out_as_one_frame(frames, socket):
    frames.expect("g")
    frames.state(state(0, "z"))
    frames.diff(diff(1, joins=["a"]))
    frames.diff(diff(2, joins=["b"]))
    frames.diff(diff(3, joins=["c"], leaves=["a"]))
    frames.diff(diff(4, leaves=["z"]))
    await socket.count(3)
    (t1, first), (t2, second) = socket.frames[1:]
    assert first["joins"].keys() == {"a"}
    assert second["joins"].keys() == {"b", "c"}
    assert second["leaves"].keys() == {"a", "z"}  # a's join went in the first
    assert t2 - t1 >= DIFF_WINDOW * 0.99


async def test_a_leave_then_a_join_in_one_window_are_both_sent(frames, socket):
    frames.expect("g")
    frames.state(state(0, "a"))
    frames.diff(diff(1, joins=["x"]))
    frames.diff(diff(2, leaves=["a"]))
    frames.diff(diff(3, joins=["a"]))
    sent = await socket.count(3)
    assert sent[2]["leaves"].keys() == {"a"}
    assert sent[2]["joins"].keys() == {"a"}


async def test_a_join_and_leave_in_one_window_cancel_out(frames, socket):
    frames.expect("g")
    frames.state(state(0))
    frames.diff(diff(1, joins=["x"]))
    frames.diff(diff(2, joins=["flash"]))
    frames.diff(diff(3, leaves=["flash"]))
    frames.diff(diff(4, joins=["marker"]))
    sent = await socket.count(3)
    assert sent[2]["joins"].keys() == {"marker"}
    assert sent[2]["leaves"] == {}


async def test_leaving_drops_what_was_pending(frames, socket):
    frames.expect("g")
    frames.state(state(0))
    frames.diff(diff(1, joins=["x"]))
    frames.diff(diff(2, joins=["y"]))
    frames.forget("g")
    frames.expect("g")
    frames.state(state(7, "x", "y"))
    frames.diff(diff(8, joins=["marker"]))
    sent = await socket.count(4)
    assert sent[2]["type"] == "aether.presence_state"
    assert sent[3]["joins"].keys() == {"marker"}


async def test_each_change_is_judged_by_its_own_number(frames, socket):
    """Diffs of two processes interleave with the state: a change numbered at or
    below the state's is in it; one older than the key's last applied change is
    stale; the rest apply, in number order."""
    frames.expect("g")
    frames.state(state(5, "x", "w"))
    first = diff(0, joins=["x", "y"])
    first["_seqs"] = {"+x": 4, "+y": 9}  # process A: x is in the state already
    frames.diff(first)
    second = diff(0, leaves=["x", "y"])
    second["_seqs"] = {"-x": 7, "-y": 8}  # process B: y's leave is older than its join
    frames.diff(second)
    third = diff(0, joins=["w"])
    third["_seqs"] = {"+w": 10}  # w is shown already: nothing to say
    frames.diff(third)
    frames_out = await socket.count(3)
    assert frames_out[0]["type"] == "aether.presence_state"
    joins, leaves = {}, {}
    for frame in frames_out[1:]:
        joins.update(frame["joins"])
        leaves.update(frame["leaves"])
    assert (sorted(joins), sorted(leaves)) == (["y"], ["x"])


async def test_presence_frames_are_counted_in_the_metrics(frames, socket):
    from prometheus_client import REGISTRY

    from aether_compat import metrics

    assert metrics.active() is not None

    def count(kind: str) -> float:
        name = "aether_presence_frames_total"
        return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0

    states, diffs = count("state"), count("diff")
    frames.expect("g")
    frames.state(state(0))
    frames.diff(diff(1, joins=["a"]))
    frames.diff(diff(2, joins=["b"]))
    await socket.count(3)
    assert (count("state"), count("diff")) == (states + 1, diffs + 2)
