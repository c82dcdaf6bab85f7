"""The message codec both layers share: what Redis can carry round-trips, anything
else (a value msgpack cannot carry, a dict key that is not a str) is refused at send
time with the key that holds it."""

import asyncio
import datetime
import decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aether_compat.errors import InvalidMessage
from aether_compat.layers import codec

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(
    st.text().filter(lambda key: key != codec.RESERVED_KEY), values, max_size=6
)


@given(messages)
def test_every_carriable_message_round_trips(message):
    assert codec.decode(codec.encode(message)) == message


@given(messages, st.sampled_from([datetime.date(2026, 1, 1), decimal.Decimal(1), {1}]))
def test_an_uncarriable_value_is_refused_naming_its_key(message, bad):
    message = {**message, "bad-key": {"inner": [bad]}}
    with pytest.raises(InvalidMessage, match=r"bad-key\.inner\[0\]"):
        codec.encode(message)


def test_tuples_arrive_as_lists_and_bytes_stay_bytes():
    assert codec.decode(codec.encode({"t": (1, (2,)), "b": b"\x00"})) == {
        "t": [1, [2]],
        "b": b"\x00",
    }


def test_refusal_leaves_the_encoder_usable():
    with pytest.raises(InvalidMessage):
        codec.encode({"x": object()})
    assert codec.decode(codec.encode({"ok": 1})) == {"ok": 1}


# Dict keys: only str, at any depth (#10)

bad_keys = (
    st.integers()
    | st.tuples(st.integers())
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
    | st.binary()
)
steps = st.lists(st.text(min_size=1) | st.integers(0, 3), max_size=4)


def nest(value, trail):
    """`value` reached from the message key through `trail` (str: a dict key; int: a
    list index, with fillers before it)."""
    for step in reversed(trail):
        value = {step: value} if isinstance(step, str) else [0] * step + [value]
    return value


def path_of(trail):
    return "bad-key" + "".join(
        f".{step}" if isinstance(step, str) else f"[{step}]" for step in trail
    )


@given(messages, steps, bad_keys)
def test_a_non_str_key_at_any_depth_is_refused_naming_its_path(message, trail, key):
    message = {**message, "bad-key": nest({key: "x"}, trail)}
    with pytest.raises(InvalidMessage) as refused:
        codec.encode(message)
    assert f"message key {path_of(trail)!r} holds a dict key" in str(refused.value)
    assert codec.decode(codec.encode({"ok": nest({"k": "x"}, trail)}))


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"cells": {(1, 2): "x"}}, r"message key 'cells' holds a dict key \(1, 2\) "),
        ({"m": {1: "a"}}, "channels_redis receivers decode with msgpack's strict_map"),
        ({1: "top"}, "the message has a dict key 1 "),
        ({"a": ({"b": {None: 1}},)}, r"message key 'a\[0\]\.b' holds a dict key None"),
        ({"a": [{True: 1}]}, r"'a\[0\]' holds a dict key True \(bool\)"),
    ],
)
def test_non_str_keys_are_refused_with_the_reason(message, says):
    with pytest.raises(InvalidMessage, match=says):
        codec.encode(message)


def test_str_subclass_keys_arrive_as_str():
    class Name(str):
        pass

    assert codec.decode(codec.encode({Name("a"): {Name("b"): 1}})) == {"a": {"b": 1}}


def test_a_message_that_contains_itself_is_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(InvalidMessage, match="contains itself"):
        codec.encode({"loop": loop})


async def test_a_non_str_key_is_refused_by_send_and_group_send(layer):
    """The message never reaches a member, whose receive() would raise on it; the
    member keeps receiving what can be sent."""
    member = await layer.new_channel()
    await layer.group_add("board", member)
    with pytest.raises(InvalidMessage, match=r"key 'cells' holds a dict key \(1, 2\)"):
        await layer.group_send("board", {"type": "move", "cells": {(1, 2): "x"}})
    with pytest.raises(InvalidMessage, match="strict_map_key"):
        await layer.send(member, {"type": "move", "cells": {1: "x"}})
    result = await layer.group_send("board", {"type": "move", "cells": {"1,2": "x"}})
    assert result.sent_count == 1
    async with asyncio.timeout(2):
        assert await layer.receive(member) == {"type": "move", "cells": {"1,2": "x"}}
