"""SendResult: frozen counts that add up across shards and processes."""

import dataclasses

import pytest

from aether_compat import ChannelFull, SendResult


def test_results_add_up():
    """Two results combine counts and keep every error in order."""
    full = ChannelFull("a", 1)
    boom = RuntimeError("boom")
    total = SendResult(2, 1, (full,)) + SendResult(3, 1, (boom,))
    assert total == SendResult(5, 2, (full, boom))
    assert (total.total, total.ok) == (7, False)


def test_empty_result_is_ok():
    """An empty group is not a failure."""
    assert SendResult() == SendResult(0, 0, ())
    assert SendResult().ok


def test_result_is_frozen():
    """Nobody mutates a result after it is returned."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        SendResult().sent_count = 3  # type: ignore[misc]


def test_of_counts_one_failure_per_error():
    error = RuntimeError("x")
    assert SendResult.of(4, [error]) == SendResult(4, 1, (error,))


def test_adding_something_else_is_a_type_error():
    with pytest.raises(TypeError):
        SendResult() + 1  # type: ignore[operator]
