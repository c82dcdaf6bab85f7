"""Group history as every layer must keep it (docs/history.md), written once for
all backends: a test module imports these tests and defines the fixture
`make_history_layer(group_options) -> layer` for its backend (see
tests/test_history_memory.py).

Groups: `room:*` keeps 5 messages, `big:*` keeps 100, `last:*` hands its newest
message to new members; `plain:*` matches no pattern and keeps nothing.
"""

import asyncio
from typing import Any

import pytest

from aether_compat.history import History, Position

GROUP_OPTIONS: dict[str, dict[str, Any]] = {
    "room:*": {"history_size": 5, "history_ttl": 300},
    "big:*": {"history_size": 100, "history_ttl": 300},
    "last:*": {"history_size": 1, "history_ttl": 300, "last_on_join": True},
}


@pytest.fixture
def hlayer(make_history_layer: Any) -> Any:
    """A layer of the backend under test with `GROUP_OPTIONS`."""
    return make_history_layer(GROUP_OPTIONS)


async def receive(layer: Any, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return await layer.receive(channel)


async def broadcast(layer: Any, group: str, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await layer.group_send(group, {"type": "chat.message", "n": n})


async def nothing_before_marker(layer: Any, channel: str) -> bool:
    """Whether `channel` has nothing queued: a marker sent now comes out first."""
    await layer.send(channel, {"type": "marker"})
    return (await receive(layer, channel))["type"] == "marker"


async def test_offsets_grow_by_one_in_one_epoch_and_the_senders_dict_is_kept(hlayer):
    channel = await hlayer.new_channel()
    await hlayer.group_add("room:a", channel)
    message = {"type": "chat.message", "text": "hi"}
    for _ in range(3):
        await hlayer.group_send("room:a", message)
    assert message == {"type": "chat.message", "text": "hi"}
    got = [await receive(hlayer, channel) for _ in range(3)]
    assert [event["offset"] for event in got] == [1, 2, 3]
    epochs = {event["epoch"] for event in got}
    assert len(epochs) == 1
    assert isinstance(next(iter(epochs)), str)
    assert next(iter(epochs))
    assert got[0]["text"] == "hi"


async def test_each_group_counts_its_own_offsets(hlayer):
    await broadcast(hlayer, "room:a", 3)
    await broadcast(hlayer, "room:b", 1)
    assert (await hlayer.group_history("room:a")).offset == 3
    assert (await hlayer.group_history("room:b")).offset == 1


async def test_a_senders_offset_and_epoch_are_replaced(hlayer):
    channel = await hlayer.new_channel()
    await hlayer.group_add("room:a", channel)
    message = {"type": "x", "offset": 99, "epoch": "mine"}
    await hlayer.group_send("room:a", message)
    event = await receive(hlayer, channel)
    assert event["offset"] == 1
    assert event["epoch"] != "mine"
    assert message == {"type": "x", "offset": 99, "epoch": "mine"}


async def test_a_group_without_history_gets_no_position_and_no_history(hlayer):
    channel = await hlayer.new_channel()
    await hlayer.group_add("plain:a", channel)
    await hlayer.group_send("plain:a", {"type": "x"})
    assert await receive(hlayer, channel) == {"type": "x"}
    assert await hlayer.group_history("plain:a") == History("", 0, [], False)
    assert await hlayer.group_history("plain:a", since=("e", 1)) == History.none()


async def test_history_is_kept_without_members(hlayer):
    await broadcast(hlayer, "room:a", 2)
    history = await hlayer.group_history("room:a")
    assert [m["n"] for m in history.messages] == [0, 1]
    assert [m["offset"] for m in history.messages] == [1, 2]
    assert history.recovered is True


async def test_without_since_it_returns_what_it_keeps_oldest_first(hlayer):
    await broadcast(hlayer, "room:a", 7)
    history = await hlayer.group_history("room:a")
    assert (history.offset, history.recovered) == (7, True)
    assert [m["offset"] for m in history.messages] == [3, 4, 5, 6, 7]
    assert {m["epoch"] for m in history.messages} == {history.epoch}
    newest = await hlayer.group_history("room:a", limit=2)
    assert [m["offset"] for m in newest.messages] == [6, 7]


async def test_a_group_with_no_message_yet_has_a_position_the_next_one_continues(
    hlayer,
):
    empty = await hlayer.group_history("room:new")
    assert (empty.offset, empty.messages, empty.recovered) == (0, [], True)
    assert empty.epoch
    await broadcast(hlayer, "room:new", 1)
    after = await hlayer.group_history("room:new", since=empty.position)
    assert (after.epoch, after.recovered) == (empty.epoch, True)
    assert [m["n"] for m in after.messages] == [0]


async def test_since_returns_exactly_the_gap(hlayer):
    await broadcast(hlayer, "room:a", 5)
    epoch = (await hlayer.group_history("room:a")).epoch
    history = await hlayer.group_history("room:a", since=(epoch, 2))
    assert history.recovered is True
    assert [m["offset"] for m in history.messages] == [3, 4, 5]
    assert history.position == Position(epoch, 5)


async def test_since_at_the_current_position_recovers_nothing_missed(hlayer):
    await broadcast(hlayer, "room:a", 3)
    now = (await hlayer.group_history("room:a")).position
    history = await hlayer.group_history("room:a", since=now)
    assert (history.messages, history.recovered) == ([], True)


@pytest.mark.parametrize(
    ("since", "why"),
    [
        pytest.param(lambda epoch: (epoch, 1), "trimmed", id="gap-trimmed"),
        pytest.param(lambda epoch: ("other-epoch", 6), "epoch", id="other-epoch"),
        pytest.param(lambda epoch: (epoch, 8), "future", id="offset-ahead"),
    ],
)
async def test_a_gap_not_all_there_gives_nothing_and_recovered_false(
    hlayer, since, why
):
    await broadcast(hlayer, "room:a", 7)
    epoch = (await hlayer.group_history("room:a")).epoch
    history = await hlayer.group_history("room:a", since=since(epoch))
    assert (history.messages, history.recovered) == ([], False), why
    assert history.position == Position(epoch, 7)


async def test_a_gap_longer_than_limit_gives_nothing(hlayer):
    await broadcast(hlayer, "room:a", 5)
    epoch = (await hlayer.group_history("room:a")).epoch
    refused = await hlayer.group_history("room:a", since=(epoch, 1), limit=3)
    assert (refused.messages, refused.recovered) == ([], False)
    taken = await hlayer.group_history("room:a", since=(epoch, 2), limit=3)
    assert [m["offset"] for m in taken.messages] == [3, 4, 5]


async def test_history_size_100_recovers_100_missed_but_not_101(hlayer):
    await broadcast(hlayer, "big:a", 1)
    seen = (await hlayer.group_history("big:a")).position
    await broadcast(hlayer, "big:a", 100, start=1)
    full = await hlayer.group_history("big:a", since=seen)
    assert full.recovered is True
    assert [m["n"] for m in full.messages] == list(range(1, 101))
    await broadcast(hlayer, "big:a", 1, start=101)
    lost = await hlayer.group_history("big:a", since=seen)
    assert (lost.messages, lost.recovered) == ([], False)


async def test_flush_starts_a_new_epoch(hlayer):
    await broadcast(hlayer, "room:a", 2)
    before = (await hlayer.group_history("room:a")).position
    await hlayer.flush()
    await broadcast(hlayer, "room:a", 1)
    after = await hlayer.group_history("room:a", since=before)
    assert after.epoch != before.epoch
    assert (after.offset, after.messages, after.recovered) == (1, [], False)


async def test_last_on_join_hands_the_newest_message_to_the_new_member_alone(hlayer):
    early = await hlayer.new_channel()
    await hlayer.group_add("last:a", early)
    await broadcast(hlayer, "last:a", 2)
    assert [(await receive(hlayer, early))["n"] for _ in range(2)] == [0, 1]
    late = await hlayer.new_channel()
    await hlayer.group_add("last:a", late)
    event = await receive(hlayer, late)
    assert (event["n"], event["offset"]) == (1, 2)
    assert event["epoch"] == (await hlayer.group_history("last:a")).epoch
    assert await nothing_before_marker(hlayer, early)


async def test_last_on_join_with_no_message_yet_hands_nothing(hlayer):
    channel = await hlayer.new_channel()
    await hlayer.group_add("last:empty", channel)
    assert await nothing_before_marker(hlayer, channel)


async def test_groups_without_last_on_join_hand_nothing_on_join(hlayer):
    await broadcast(hlayer, "room:a", 2)
    channel = await hlayer.new_channel()
    await hlayer.group_add("room:a", channel)
    assert await nothing_before_marker(hlayer, channel)


async def test_excluded_members_do_not_change_what_history_keeps(hlayer):
    channel = await hlayer.new_channel()
    await hlayer.group_add("room:a", channel)
    await hlayer.group_send("room:a", {"type": "x"}, exclude=[channel])
    assert (await hlayer.group_history("room:a")).offset == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"since": 5}, "since", id="since-not-pair"),
        pytest.param({"since": ("", 1)}, "epoch", id="empty-epoch"),
        pytest.param({"since": ("e", -1)}, "offset", id="negative-offset"),
        pytest.param({"limit": 0}, "limit", id="zero-limit"),
    ],
)
async def test_bad_arguments_raise_type_error(hlayer, kwargs, match):
    with pytest.raises(TypeError, match=match):
        await hlayer.group_history("room:a", **kwargs)
