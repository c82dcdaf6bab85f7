"""The per-group-pattern options setting shared by history and presence events."""

import re

import pytest

from aether_compat.layers.group_options import (
    MAX_HISTORY_SIZE,
    NO_OPTIONS,
    GroupOptions,
    GroupOptionTable,
)

ROOMS = {"history_size": 100, "history_ttl": 300, "presence_events": True}


def test_groups_that_match_nothing_have_no_options():
    table = GroupOptionTable({"room:*": ROOMS})
    assert table.for_group("user:7") is NO_OPTIONS
    assert not NO_OPTIONS.keeps_history
    assert not NO_OPTIONS.presence_events
    assert not GroupOptionTable()
    assert GroupOptionTable().for_group("room:a") is NO_OPTIONS


def test_a_glob_matches_the_whole_name_and_the_first_pattern_wins():
    table = GroupOptionTable(
        {
            "room:vip.*": {"history_size": 5, "history_ttl": 10},
            "room:*": ROOMS,
            re.compile(r"feed\.\d+"): {"presence_events": True},
        }
    )
    assert table
    assert table.for_group("room:vip.lounge").history_size == 5
    assert table.for_group("room:lobby") == GroupOptions(**ROOMS)
    assert table.for_group("room:lobby").keeps_history
    assert table.for_group("xroom:lobby") is NO_OPTIONS
    assert table.for_group("feed.42").presence_events
    assert table.for_group("feed.42x") is NO_OPTIONS


def test_lookups_stay_right_past_the_memo_limit():
    table = GroupOptionTable({"room:*": ROOMS})
    for n in range(10_000):
        assert table.for_group(f"room:{n}").history_size == 100
        assert table.for_group(f"user:{n}") is NO_OPTIONS


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"history_sise": 1}, TypeError, "unknown key(s) ['history_sise']"),
        ({"history_size": 10}, ValueError, "needs a positive history_ttl"),
        ({"history_size": "10", "history_ttl": 1}, TypeError, "must be an integer"),
        ({"history_size": True, "history_ttl": 1}, TypeError, "must be an integer"),
        ({"history_size": -1, "history_ttl": 1}, ValueError, "between 0 and"),
        (
            {"history_size": MAX_HISTORY_SIZE + 1, "history_ttl": 1},
            ValueError,
            "between 0 and",
        ),
        ({"history_size": 1, "history_ttl": float("nan")}, ValueError, "finite"),
        ({"last_on_join": True}, ValueError, "needs history_size >= 1"),
        ({"presence_events": 1}, TypeError, "True or False"),
        ({"presence_grace": -2}, ValueError, ">= 0"),
    ],
)
def test_bad_options_name_the_pattern_and_the_rule(options, error, words):
    with pytest.raises(error) as raised:
        GroupOptionTable({"room:*": options})
    assert words in str(raised.value)
    assert "group_options['room:*']" in str(raised.value)


@pytest.mark.parametrize("settings", [["room:*"], "room:*", {"": ROOMS}, {1: ROOMS}])
def test_a_setting_of_the_wrong_shape_is_refused(settings):
    with pytest.raises(TypeError, match="group_options"):
        GroupOptionTable(settings)


def test_options_of_a_pattern_must_be_a_dict():
    with pytest.raises(TypeError, match=r"group_options\['room:\*'\] must be a dict"):
        GroupOptionTable({"room:*": 100})


@pytest.mark.parametrize("layer_path", ["InMemoryChannelLayer", "RedisChannelLayer"])
def test_both_layers_take_group_options(layer_path: str) -> None:
    from aether_compat import layers

    layer_class = getattr(layers, layer_path)
    layer = layer_class(group_options={"room:*": {"history_size": 5, "history_ttl": 9}})
    assert layer.group_options.for_group("room:a").history_size == 5
    assert not layer.group_options.for_group("lobby").keeps_history
    with pytest.raises(TypeError, match="unknown key"):
        layer_class(group_options={"room:*": {"histroy_size": 5}})
