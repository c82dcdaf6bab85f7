"""The message codec both layers share: what Redis can carry round-trips, anything
else is refused at send time with the key that holds it."""

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


def test_integer_keys_survive_on_both_layers():
    """msgpack carries them; decoding does not insist on string keys, so a message
    that works in memory works on Redis."""
    assert codec.decode(codec.encode({"m": {1: "a"}})) == {"m": {1: "a"}}


def test_refusal_leaves_the_encoder_usable():
    with pytest.raises(InvalidMessage):
        codec.encode({"x": object()})
    assert codec.decode(codec.encode({"ok": 1})) == {"ok": 1}
