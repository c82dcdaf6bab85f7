"""Where the Redis layer keeps things, as pure functions: which box a channel name
routes to (and back), key names, the SCAN pattern of a prefix, and the stored item
format."""

import uuid

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from aether_compat.layers.redis.keys import (
    CID_LENGTH,
    Route,
    box_base,
    channel_name,
    decode_item,
    encode_item,
    group_key,
    group_tag,
    route,
    scan_pattern,
)
from tests.support.layers import REDIS_URL

CID = "0123456789ab"
NAME_CHARS = st.text(
    st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
    ),
    min_size=1,
    max_size=40,
)

# route and channel_name


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        pytest.param(f"specific.{CID}!1", Route(f"p.{CID}", "specific!1"), id="made"),
        pytest.param(f"a.b.{CID}!ff", Route(f"p.{CID}", "a.b!ff"), id="dotted-prefix"),
        pytest.param(f".{CID}!1", Route(f"p.{CID}", "!1"), id="empty-prefix"),
        pytest.param(f"x.{CID}!a.b", Route(f"p.{CID}", "x!a.b"), id="dot-after-bang"),
        pytest.param(f"x.{CID}!a!b", Route(f"p.{CID}", "x!a!b"), id="second-bang"),
        pytest.param(f"x.{CID}!", Route(f"p.{CID}", "x!"), id="empty-local"),
    ],
)
def test_layer_made_names_route_to_their_process_box(channel, expected):
    assert route(channel) == expected


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param("chan", id="plain"),
        pytest.param("room.lobby", id="dots-no-bang"),
        pytest.param(f"!{CID}", id="bang-first"),
        pytest.param(f"{CID}!1", id="no-dot-before-cid"),
        pytest.param("specific.0123456789a!1", id="cid-too-short"),
        pytest.param("specific.0123456789abc!1", id="cid-too-long"),
        pytest.param("specific.0123456789AB!1", id="cid-upper-case"),
        pytest.param("specific.0123456789ag!1", id="cid-not-hex"),
        pytest.param(f"specific.{CID[:6]}.{CID[6:]}!1", id="dot-inside-cid"),
    ],
)
def test_other_names_are_plain_channels_with_their_own_box(channel):
    assert route(channel) == Route(f"c.{channel}", None)


def test_the_cid_is_the_length_the_layer_makes():
    assert len(CID) == CID_LENGTH


@given(st.text())
def test_channel_name_inverts_route_for_any_name(channel):
    assert channel_name(*route(channel)) == channel


@given(prefix=NAME_CHARS, cid=st.text("0123456789abcdef", min_size=12, max_size=12))
def test_names_of_one_process_share_its_box(prefix, cid):
    first, second = route(f"{prefix}.{cid}!1"), route(f"{prefix}.{cid}!2")
    assert first.box == second.box == f"p.{cid}"
    assert first.token != second.token


def test_channel_name_of_a_plain_box_ignores_a_token():
    assert channel_name("c.chan", None) == "chan"
    assert channel_name("c.chan", "stray!1") == "chan"


# key names


def test_keys_carry_their_box_or_group_as_a_hash_tag():
    assert box_base("asgi", f"p.{CID}") == f"asgi:{{p.{CID}}}:"
    assert box_base("asgi", "c.chan") == "asgi:{c.chan}:"
    assert group_key("asgi", "room:1") == "asgi:{g.room:1}:p"
    assert group_tag("room:1") == "g.room:1"


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [
        ("asgi", "asgi:{*"),
        ("a*b", "a\\*b:{*"),
        ("a?b", "a\\?b:{*"),
        ("a[bc]", "a\\[bc\\]:{*"),
        ("a\\b", "a\\\\b:{*"),
    ],
)
def test_scan_pattern_escapes_glob_characters(prefix, pattern):
    assert scan_pattern(prefix) == pattern


@pytest.mark.redis
def test_scan_pattern_matches_exactly_the_prefix_keys_in_redis():
    """'asgi' must not match 'asgi2' keys, and '[ab]' in a prefix is literal."""
    base = f"test-{uuid.uuid4().hex[:12]}"
    prefix = base + "[ab]"
    mine = [f"{prefix}:{{c.x}}:q", f"{prefix}:{{g.room}}:p"]
    others = [f"{prefix}2:{{c.x}}:q", f"{base}a:{{c.x}}:q", f"{base}:{{c.x}}:q"]
    with redis.Redis.from_url(REDIS_URL) as client:
        try:
            for key in mine + others:
                client.set(key, "1", ex=60)
            found = {
                key.decode()
                for key in client.scan_iter(match=scan_pattern(prefix), count=1000)
            }
            assert found == set(mine)
        finally:
            client.delete(*mine, *others)


# stored items


def test_an_item_is_deadline_tokens_payload_on_three_lines():
    assert encode_item(1234, "a!1 a!2", b"body") == b"1234\na!1 a!2\nbody"
    assert decode_item(b"1234\na!1 a!2\nbody") == (1234, ["a!1", "a!2"], b"body")


def test_an_item_without_tokens_decodes_to_no_tokens():
    assert decode_item(encode_item(5, "", b"x")) == (5, [], b"x")


@given(
    deadline=st.integers(min_value=0, max_value=2**63 - 1),
    tokens=st.lists(NAME_CHARS.map(lambda name: name + "!1"), max_size=5),
    payload=st.binary(),
)
def test_items_round_trip_whatever_the_payload_holds(deadline, tokens, payload):
    item = encode_item(deadline, " ".join(tokens), payload)
    assert decode_item(item) == (deadline, tokens, payload)
