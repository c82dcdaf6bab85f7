"""The Channels facade over stock layers (Channels' InMemoryChannelLayer and
channels_redis on the real Redis): colon names translated without collisions, counts
exactly as much as the layer can tell, and clear refusals for what it cannot do."""

import asyncio
import logging
import socket
import uuid

import pytest
from channels.layers import BaseChannelLayer
from channels.layers import InMemoryChannelLayer as StockMemoryLayer
from channels_redis.core import RedisChannelLayer as StockRedisLayer
from hypothesis import given
from hypothesis import strategies as st

from aether_compat import Channels, SendResult
from aether_compat.layers import InMemoryChannelLayer
from aether_compat.names import STOCK_MARKER, caller_group_name, stock_group_name
from tests.support.facade import assert_nothing, receive
from tests.support.layers import REDIS_URL

NOT_COUNTED = SendResult(0, 0, ())


@pytest.fixture(params=["channels-memory", "channels-redis"])
async def make_stock(request):
    """Factory of stock layers of the current kind, configured as the facade's;
    Redis ones get a prefix of their own and are flushed afterwards."""
    made = []

    def factory(**config):
        if request.param == "channels-memory":
            layer = StockMemoryLayer(**config)
        else:
            host = {"address": REDIS_URL, "socket_timeout": None}
            prefix = f"test-facade-{uuid.uuid4().hex[:12]}"
            layer = StockRedisLayer(hosts=[host], prefix=prefix, **config)
        made.append(layer)
        Channels.configure(layer)
        return layer

    if request.param == "channels-redis":
        request.applymarker(pytest.mark.redis)
    yield factory
    for layer in made:
        await layer.flush()


@pytest.fixture
def stock(make_stock):
    return make_stock()


async def join(layer, group, count):
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await Channels.group_add(group, channel)
    return channels


# Broadcasts and their counts


async def test_broadcast_reaches_members_but_is_not_counted(stock):
    """Stock group_send returns None, so the result is SendResult(0, 0): 'not
    counted', while every member does get the event."""
    a, b = await join(stock, "room:lobby", 2)
    result = await Channels.group("room:lobby").broadcast("hi", sender="ann")
    assert result == NOT_COUNTED
    for channel in (a, b):
        assert await receive(stock, channel) == {
            "type": "aether.message",
            "text": "hi",
            "sender": "ann",
            "group": "room:lobby",
        }


async def test_full_member_is_dropped_by_the_stock_layer_uncounted(make_stock):
    """Stock group_send silently skips a full member; the facade cannot see it.
    (Named channels: channels_redis shares one quota among a process's `!` channels.)"""
    layer = make_stock(capacity=1)
    a, full = (f"inbox-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for channel in (a, full):
        await Channels.group_add("room:busy", channel)
    assert await Channels.send(full, "fills it") is True
    assert await Channels.group("room:busy").broadcast("hi") == NOT_COUNTED
    assert (await receive(layer, a))["text"] == "hi"
    assert (await receive(layer, full))["text"] == "fills it"
    await assert_nothing(layer, full)


async def test_binary_broadcast_travels_as_bytes(stock):
    (a,) = await join(stock, "room:img", 1)
    assert await Channels.group("room:img").broadcast_binary(b"\x00\xff") == NOT_COUNTED
    assert (await receive(stock, a))["bytes"] == b"\x00\xff"


async def test_send_is_true_when_queued_and_false_when_full(make_stock, caplog):
    """A full channel is an expected outcome (logged at INFO, no traceback)."""
    layer = make_stock(capacity=1)
    channel = await layer.new_channel()
    assert await Channels.send(channel, "one") is True
    with caplog.at_level(logging.INFO, logger="aether_compat.facade"):
        assert await Channels.send(channel, "two") is False
    (record,) = caplog.records
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert (await receive(layer, channel))["text"] == "one"
    with pytest.raises(TypeError, match="Channel name"):
        await Channels.send("bad name", "x")


async def test_unreachable_redis_is_reported_not_raised():
    """channels_redis at a port where nobody listens: a broadcast is one counted
    failure carrying the connection error, send() says False; membership changes
    raise, since the caller must know they did not happen."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Channels.configure(StockRedisLayer(hosts=[f"redis://127.0.0.1:{port}/0"]))
    async with asyncio.timeout(20):
        result = await Channels.group("room:x").broadcast("hi")
        assert (result.sent_count, result.failed_count) == (0, 1)
        assert "Connect" in type(result.errors[0]).__name__
        assert await Channels.send("inbox", "hi") is False
        with pytest.raises(Exception, match="onnect"):
            await Channels.group_add("room:x", "inbox")


# Names


async def test_colon_group_travels_under_its_documented_name(stock):
    """`room:lobby` is `aether.room._lobby` on a stock layer (names.py)."""
    (a,) = await join(stock, "room:lobby", 1)
    await stock.group_send("aether.room._lobby", {"type": "plain"})
    assert await receive(stock, a) == {"type": "plain"}


async def test_names_without_colons_meet_plain_channels_code(stock):
    channel = await stock.new_channel()
    await stock.group_add("chat_lobby", channel)
    await Channels.group("chat_lobby").broadcast("hello")
    assert (await receive(stock, channel))["text"] == "hello"


LOOK_ALIKES = ["a:b", "a.b", "a_b", "a._b", "a..b", "aether.a._b", "aether.a:b", "a-b"]


async def test_look_alike_names_never_share_a_group(stock):
    channels = {name: (await join(stock, name, 1))[0] for name in LOOK_ALIKES}
    for name in LOOK_ALIKES:
        await Channels.group(name).broadcast(name)
    for name, channel in channels.items():
        assert (await receive(stock, channel))["text"] == name
        await assert_nothing(stock, channel, wait=0.05)


async def test_too_long_after_translation_is_refused_not_shortened(stock):
    name = "x:" * 49 + "y"
    with pytest.raises(TypeError, match="too long for a stock channel layer"):
        await Channels.group(name).broadcast("hi")
    Channels.configure(InMemoryChannelLayer())
    assert (await Channels.group(name).broadcast("hi")).ok


# What stock layers cannot do


async def test_group_members_is_not_implemented_and_says_why(stock):
    with pytest.raises(NotImplementedError, match="cannot list group members"):
        await Channels.group_members("room:lobby")


async def test_sessions_are_not_implemented_and_unregister_is_harmless(stock):
    channel = await stock.new_channel()

    async def sender(text):
        pass

    with pytest.raises(NotImplementedError, match="aether_message"):
        await Channels.register_session(channel, sender)
    await Channels.unregister_session(channel)


async def test_sync_twin_over_a_stock_layer(stock):
    (a,) = await join(stock, "room:sync", 1)
    twin = Channels.sync.group("room:sync")
    assert await asyncio.to_thread(twin.broadcast, "from a thread") == NOT_COUNTED
    assert (await receive(stock, a))["text"] == "from a thread"


# The translation itself (names.py), as properties

aether_names = st.text(
    alphabet="abcXYZ019-_.:", min_size=1, max_size=BaseChannelLayer.MAX_NAME_LENGTH - 1
)


@given(aether_names)
def test_translation_is_valid_and_reversible(name):
    """Every name either translates to a valid stock name that translates back (so
    two different names can never meet), or is refused as too long."""
    unchanged = ":" not in name and not name.startswith(STOCK_MARKER)
    length = len(STOCK_MARKER) + len(name) + name.count(":") + name.count(".")
    if not unchanged and length >= BaseChannelLayer.MAX_NAME_LENGTH:
        with pytest.raises(TypeError, match="too long for a stock channel layer"):
            stock_group_name(name)
        return
    translated = stock_group_name(name)
    assert BaseChannelLayer().require_valid_group_name(translated)
    assert caller_group_name(translated) == name
    assert (translated == name) is unchanged


@pytest.mark.parametrize(
    ("name", "translated"),
    [
        ("room:lobby", "aether.room._lobby"),
        ("notifications:user:123", "aether.notifications._user._123"),
        ("a.b:c", "aether.a..b._c"),
        ("chat_lobby", "chat_lobby"),
        ("aether.stats", "aether.aether..stats"),
    ],
)
def test_translation_examples(name, translated):
    assert stock_group_name(name) == translated


@pytest.mark.parametrize(
    "stock_name", ["aether.x", "aether.a.b", "aether.", "aether.."]
)
def test_names_the_translation_never_makes_are_refused(stock_name):
    with pytest.raises(ValueError, match="not a translated"):
        caller_group_name(stock_name)
