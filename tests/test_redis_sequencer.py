"""The Redis layer's per-member offset order (sequencer.py), without Redis: what is
handed on at once, held, dropped, filled from history, and released."""

import asyncio

import ormsgpack
import pytest

from aether_compat.layers.redis.position import Stamp, mark, split_stamp, with_position
from aether_compat.layers.redis.sequencer import JOINING, Sequencer


class Stage:
    """A sequencer whose hand-offs, acks and timers the test sees and runs."""

    def __init__(self, history=None):
        self.handed: list[tuple[str, int]] = []  # (token, offset) in hand-off order
        self.acked: list[str] = []
        self.timers: list = []
        self.history = history or {}
        self.sequencer = Sequencer(
            self.hand, self.acked.extend, self.fetch, self.schedule, lambda _: None
        )

    def hand(self, deadline, tokens, payload, counted):
        self.handed += [(token, payload) for token in tokens]

    async def fetch(self, group, epoch, first, last):
        return [
            (offset, frozenset(), offset)
            for offset in range(first, last + 1)
            if offset in self.history
        ]

    def schedule(self, delay, callback):
        self.timers.append(callback)

    def arrive(self, offset, tokens, epoch="e", counted=True):
        self.sequencer.arrive(Stamp("g", epoch, offset), tokens, offset, 0, counted)

    async def fire(self):
        """Run the hold timer now, and the fill it starts."""
        (callback,) = self.timers
        self.timers.clear()
        callback()
        await asyncio.gather(*self.sequencer._tasks)

    def of(self, token):
        return [offset for t, offset in self.handed if t == token]


def test_in_order_messages_go_at_once():
    stage = Stage()
    for offset in (1, 2, 3):
        stage.arrive(offset, ["a", "b"])
    assert stage.of("a") == stage.of("b") == [1, 2, 3]
    assert stage.timers == []


def test_an_early_message_waits_for_its_predecessor():
    stage = Stage()
    stage.arrive(1, ["a"])
    stage.arrive(3, ["a"])
    assert stage.of("a") == [1]
    stage.arrive(2, ["a"])
    assert stage.of("a") == [1, 2, 3]


def test_a_duplicate_is_dropped_and_acked():
    stage = Stage()
    stage.arrive(1, ["a"])
    stage.arrive(1, ["a"])
    assert stage.of("a") == [1]
    assert stage.acked == ["a"]


async def test_a_gap_is_filled_from_history_after_the_hold():
    stage = Stage(history={2: True})
    stage.arrive(1, ["a", "b"])
    stage.arrive(3, ["a", "b"])
    assert stage.of("a") == [1]
    await stage.fire()
    assert stage.of("a") == stage.of("b") == [1, 2, 3]
    assert stage.sequencer.fills == 1
    stage.arrive(2, ["a"])  # the late original: already filled in
    assert stage.of("a") == [1, 2, 3]


async def test_what_history_lacks_is_skipped():
    stage = Stage(history={})
    stage.arrive(1, ["a"])
    stage.arrive(4, ["a"])
    await stage.fire()
    assert stage.of("a") == [1, 4]


def test_a_joining_member_waits_for_its_position_then_starts_after_it():
    stage = Stage()
    stage.sequencer.joining("g", "a")
    stage.arrive(5, ["a"])
    stage.arrive(6, ["a"])
    assert stage.of("a") == []
    stage.sequencer.joined("g", "a", "e", 5, last=(0, "last"))
    assert stage.of("a") == ["last", 6]
    assert stage.acked == ["a"]  # 5 came before its join: counted, dropped


def test_a_member_that_left_gets_nothing_still_under_way():
    stage = Stage()
    stage.arrive(1, ["a", "b"])
    stage.sequencer.forget("g", "a")
    stage.arrive(2, ["a", "b"])
    assert stage.of("a") == [1]
    assert stage.of("b") == [1, 2]
    stage.sequencer.joining("g", "a")
    stage.sequencer.joined("g", "a", "e", 2)
    stage.arrive(3, ["a", "b"])
    assert stage.of("a") == [1, 3]


def test_a_new_epoch_releases_what_was_held_and_starts_again():
    stage = Stage()
    stage.arrive(1, ["a"])
    stage.arrive(3, ["a"])
    stage.arrive(1, ["a"], epoch="f")
    assert stage.of("a") == [1, 3, 1]


def test_a_member_not_known_here_takes_what_comes():
    stage = Stage()
    stage.arrive(7, ["x"])
    stage.arrive(8, ["x"])
    assert stage.of("x") == [7, 8]
    assert JOINING < 0


@pytest.mark.parametrize("size", [0, 13, 14, 15, 100, 70_000])
def test_position_keys_are_added_to_any_msgpack_map(size):
    message = {f"k{i}": i for i in range(size)}
    message["offset"] = "the sender's"
    stamped = ormsgpack.unpackb(with_position(ormsgpack.packb(message), "ep", 9))
    assert (stamped["offset"], stamped["epoch"]) == (9, "ep")
    assert len(stamped) == len(message) + 1


def test_the_mark_names_the_group_even_with_colons():
    stamp, tokens = split_stamp([mark("room:a:b", "ep", 12).strip(), "t!1"])
    assert stamp == Stamp("room:a:b", "ep", 12)
    assert tokens == ["t!1"]
