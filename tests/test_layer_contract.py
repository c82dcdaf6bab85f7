"""CONTRACT.md sections 1-13, statement by statement, on every backend.

Each test's docstring names the statement it checks; the Redis layer runs the same
module through the parametrised `layer` fixture.
"""

import asyncio
import inspect
import random
import re
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull as ChannelsChannelFull

from aether_compat import ChannelFull, SendResult
from aether_compat.layers.base import AetherLayer
from tests.support.parking import parking

CHANNELS_NAME_RULE = (
    "name must be a valid unicode string with length < 100 containing only "
    "ASCII alphanumerics, hyphens, underscores, or periods."
)


async def receive(layer, channel, within=2):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def assert_nothing(layer, channel, wait=0.1):
    """The channel stays empty for `wait` seconds (a bounded negative check)."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait):
            await layer.receive(channel)


# 1. Configuration


def test_is_a_channels_base_layer(layer):
    """§1.7: the class is a BaseChannelLayer and takes the CONFIG keys as kwargs."""
    from channels.layers import BaseChannelLayer

    assert isinstance(layer, BaseChannelLayer)
    assert isinstance(layer, AetherLayer)


def test_config_keys_are_kept(make_layer):
    """§1.7: expiry, group_expiry, capacity and channel_capacity are honoured."""
    layer = make_layer(
        expiry=5, group_expiry=30, capacity=7, channel_capacity={"a*": 3}
    )
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (5, 30, 7)
    assert layer.get_capacity("abc") == 3
    assert layer.get_capacity("xyz") == 7


@pytest.mark.parametrize(
    ("key", "value"),
    [("capacity", 0), ("expiry", -1), ("group_expiry", "1"), ("capacity", 1.5)],
)
def test_bad_config_fails_at_startup(make_layer, key, value):
    """§1.5: a wrong setting raises from the constructor, naming the key."""
    with pytest.raises(ValueError, match=key):
        make_layer(**{key: value})


def test_unknown_config_key_fails_at_startup(make_layer):
    """§1.7: a typo in CONFIG is a TypeError from the constructor, not ignored."""
    with pytest.raises(TypeError):
        make_layer(capacty=5)


# 2. Names


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b"bytes", id="bytes"),
        pytest.param(None, id="none"),
        pytest.param(1, id="int"),
        pytest.param("", id="empty"),
        pytest.param("a" * 100, id="100-chars"),
        pytest.param("a b", id="space"),
        pytest.param("é", id="non-ascii"),
        pytest.param("a!!", id="double-bang"),
        pytest.param("!x", id="leading-bang"),
        pytest.param("a:b", id="colon"),
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("a\u0663", id="arabic-digit"),
    ],
)
async def test_invalid_channel_names_raise_type_error(layer, name):
    """§2.8-13: invalid channel names raise TypeError with Channels' rule text."""
    with pytest.raises(TypeError, match=re.escape("Channel " + CHANNELS_NAME_RULE)):
        await layer.send(name, {"type": "x"})
    with pytest.raises(TypeError, match="Channel name"):
        await layer.group_add("g", name)


@pytest.mark.parametrize(
    "name",
    ["a" * 99, "a!", "a!é", "-", ".", "specific.abc!def", "x_y-z.1"],
)
async def test_valid_channel_names_are_accepted(layer, name):
    """§2.9, 2.11: 99 characters, a `!` with a Unicode local part, punctuation-only."""
    await layer.send(name, {"type": "x"})
    assert (await receive(layer, name)) == {"type": "x"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a!b", id="bang"),
        pytest.param("a b", id="space"),
        pytest.param("", id="empty"),
        pytest.param("g" * 100, id="100-chars"),
        pytest.param("é", id="non-ascii"),
        pytest.param(b"g", id="bytes"),
        pytest.param("room:\n", id="newline"),
        pytest.param("room:\u0663", id="arabic-digit"),
    ],
)
async def test_invalid_group_names_raise_type_error(layer, name):
    """§2.10, 2.13: group names keep Channels' rule (plus `:`), with its text."""
    rule = re.escape("Group " + CHANNELS_NAME_RULE)
    with pytest.raises(TypeError, match=rule):
        await layer.group_add(name, "chan")
    with pytest.raises(TypeError, match=rule):
        await layer.group_send(name, {"type": "x"})
    with pytest.raises(TypeError, match=rule):
        await layer.group_discard(name, "chan")


async def test_group_names_may_hold_colons(layer):
    """§18: Aether-style names (`room:general`, `user:42`) are valid groups."""
    channel = await layer.new_channel()
    await layer.group_add("room:general", channel)
    await layer.group_add("user:42", channel)
    assert (await layer.group_send("room:general", {"type": "m"})).sent_count == 1
    assert (await receive(layer, channel)) == {"type": "m"}


def test_deprecated_name_checks_still_work(layer):
    """§2.14: valid_channel_name / valid_group_name warn and still validate."""
    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert layer.valid_group_name("room:1")
    with pytest.warns(DeprecationWarning, match="deprecated"), pytest.raises(TypeError):
        layer.valid_channel_name("bad name")


def test_non_local_name(layer):
    """§2.16: the routing part of a process-specific name ends at the `!`."""
    assert layer.non_local_name("specific.abc!def") == "specific.abc!"
    assert layer.non_local_name("plain") == "plain"


# 3. Messages


@pytest.mark.parametrize("message", [["list"], "text", None, 3])
async def test_message_must_be_a_dict(layer, message):
    """§3.17: a non-dict message is refused (TypeError, also an AssertionError)."""
    with pytest.raises(TypeError, match="dict"):
        await layer.send("chan", message)
    with pytest.raises(AssertionError):
        await layer.group_send("g", message)


async def test_message_without_type_is_carried(layer):
    """§3.18: the layer itself does not require a `type` key."""
    await layer.send("chan", {"no": "type"})
    assert (await receive(layer, "chan")) == {"no": "type"}


async def test_reserved_key_is_refused(layer):
    """§3.21: `__asgi_channel__` is reserved."""
    with pytest.raises(AssertionError, match="__asgi_channel__"):
        await layer.send("chan", {"type": "x", "__asgi_channel__": "y"})


async def test_values_redis_cannot_carry_are_refused_naming_the_key(layer):
    """§3.19-20: a value msgpack cannot encode is a TypeError at send time that names
    the key, so code that works in memory works on Redis."""
    import datetime

    message = {"type": "x", "data": {"when": [1, datetime.date(2026, 1, 1)]}}
    with pytest.raises(TypeError, match=r"data\.when\[1\].*date"):
        await layer.send("chan", message)
    with pytest.raises(TypeError, match="huge"):
        await layer.group_send("g", {"type": "x", "huge": 2**64})


async def test_messages_are_copied_at_send_time(layer):
    """§3.20: later mutation by the sender is not seen; tuples arrive as lists."""
    message = {"type": "x", "items": [1, 2], "pair": (1, "a"), "raw": b"\x00\xff"}
    await layer.send("chan", message)
    message["items"].append(3)
    got = await receive(layer, "chan")
    assert got == {"type": "x", "items": [1, 2], "pair": [1, "a"], "raw": b"\x00\xff"}


async def test_group_members_get_independent_copies(layer):
    """§3.20: one receiver mutating its message does not change another's."""
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", a)
    await layer.group_add("g", b)
    await layer.group_send("g", {"type": "x", "items": [1]})
    (await receive(layer, a))["items"].append(2)
    assert (await receive(layer, b))["items"] == [1]


async def test_one_megabyte_message(layer):
    """§3.22: a layer carries messages of at least 1 MB."""
    body = "x" * 1_100_000
    await layer.send("chan", {"type": "big", "body": body})
    assert (await receive(layer, "chan"))["body"] == body


# 4. extensions


def test_extensions(layer):
    """§4.23: groups and flush, plus what aether_compat adds."""
    assert {"groups", "flush", "group_members", "sessions"} <= set(layer.extensions)


# 5. send


async def test_send_returns_none(layer):
    """§5.25: send enqueues and returns None, without blocking."""
    assert await layer.send("chan", {"type": "x"}) is None


async def test_send_capacity(make_layer):
    """§5.26: a channel holding `capacity` messages raises ChannelFull naming it."""
    layer = make_layer(capacity=3)
    for _ in range(3):
        await layer.send("chan", {"type": "x"})
    with pytest.raises(ChannelsChannelFull, match="'chan'") as info:
        await layer.send("chan", {"type": "x"})
    assert isinstance(info.value, ChannelFull)
    assert info.value.channel == "chan"
    await receive(layer, "chan")
    await layer.send("chan", {"type": "x"})  # room again after one receive


async def test_channel_capacity_globs_and_regexes(make_layer):
    """§5.27: globs and compiled regexes set capacities; the first match wins."""
    layer = make_layer(
        capacity=10, channel_capacity={"small*": 1, re.compile(r"^mid.*"): 2}
    )
    await layer.send("small-1", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("small-1", {"type": "x"})
    for _ in range(2):
        await layer.send("mid-1", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("mid-1", {"type": "x"})
    for _ in range(10):
        await layer.send("other", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("other", {"type": "x"})


async def test_order_is_kept(layer):
    """§5.30: messages from one sender to one channel arrive in send order."""
    for i in range(50):
        await layer.send("chan", {"type": "x", "i": i})
    assert [(await receive(layer, "chan"))["i"] for _ in range(50)] == list(range(50))


# 6. receive


async def test_receive_blocks_until_a_message(layer):
    """§6.31: receive waits; a later send completes it."""
    async with parking(layer, "chan") as parked:
        task = asyncio.create_task(receive(layer, "chan"))
        await parked()
    assert not task.done()
    await layer.send("chan", {"type": "late"})
    assert (await task) == {"type": "late"}


async def test_each_message_goes_to_exactly_one_reader(layer):
    """§6.32: two readers of one channel never both get the same message."""
    async with parking(layer, "shared") as parked:
        readers = [asyncio.create_task(receive(layer, "shared")) for _ in range(2)]
        await parked(2)
    await layer.send("shared", {"type": "x", "n": 1})
    await layer.send("shared", {"type": "x", "n": 2})
    got = sorted(m["n"] for m in await asyncio.gather(*readers))
    assert got == [1, 2]


async def test_cancelled_reader_loses_nothing(layer):
    """§6.33: cancelling one of two waiting readers loses no message (the upstream
    in-memory layer orphans the queue here)."""
    async with parking(layer, "chan") as parked:
        first = asyncio.create_task(layer.receive("chan"))
        second = asyncio.create_task(layer.receive("chan"))
        await parked(2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await layer.send("chan", {"type": "x"})
    async with asyncio.timeout(2):
        assert (await second) == {"type": "x"}


async def test_cancel_after_wakeup_passes_the_message_on(layer):
    """§6.33: a reader cancelled after it was woken, but before it ran, leaves the
    message for the next reader."""
    async with parking(layer, "chan") as parked:
        first = asyncio.create_task(layer.receive("chan"))
        second = asyncio.create_task(layer.receive("chan"))
        await parked(2)
    await layer.send("chan", {"type": "x"})
    first.cancel()
    results = await asyncio.gather(first, second, return_exceptions=True)
    delivered = [r for r in results if isinstance(r, dict)]
    if not delivered:  # neither reader got it: it must still be waiting
        delivered = [await receive(layer, "chan")]
    assert delivered == [{"type": "x"}]


async def test_cancelled_lone_reader_leaves_message_for_next(layer):
    """§6.33: a message sent after the only reader was cancelled is still received."""
    async with parking(layer, "chan") as parked:
        task = asyncio.create_task(layer.receive("chan"))
        await parked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await layer.send("chan", {"type": "x"})
    assert (await receive(layer, "chan")) == {"type": "x"}


async def test_receive_on_specific_channel(layer):
    """§6: a `new_channel()` name can be received on by its owner."""
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x"})
    assert (await receive(layer, channel)) == {"type": "x"}


# 7. new_channel


async def test_new_channel_names_are_valid_and_unique(layer):
    """§7.36-37: valid names with a `!`, the prefix kept, never repeating."""
    names = {await layer.new_channel() for _ in range(1000)}
    assert len(names) == 1000
    for name in list(names)[:20]:
        assert layer.require_valid_channel_name(name)
        assert "!" in name
    assert (await layer.new_channel("custom")).startswith("custom")
    assert (await layer.new_channel(prefix="p")).startswith("p")


async def test_new_channel_survives_random_reseed(layer):
    """§7.36: names do not repeat even if user code reseeds `random`."""
    random.seed(1)
    first = await layer.new_channel()
    random.seed(1)
    assert await layer.new_channel() != first


# 8. Groups


async def test_group_send_reaches_every_member(layer):
    """§8.40: every member gets a copy; the result counts them."""
    channels = [await layer.new_channel() for _ in range(5)]
    for channel in channels:
        await layer.group_add("g", channel)
    result = await layer.group_send("g", {"type": "x"})
    assert result == SendResult(5, 0, ())
    for channel in channels:
        assert (await receive(layer, channel)) == {"type": "x"}


async def test_group_add_is_idempotent(layer):
    """§8.38: adding twice still delivers once."""
    await layer.group_add("g", "chan")
    await layer.group_add("g", "chan")
    assert (await layer.group_send("g", {"type": "x"})).sent_count == 1
    await receive(layer, "chan")
    await assert_nothing(layer, "chan")


async def test_group_discard(layer):
    """§8.39: discard removes; discarding unknown members or groups is silent."""
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    await layer.group_discard("g", "a")
    await layer.group_discard("g", "never-added")
    await layer.group_discard("no-such-group", "a")
    assert (await layer.group_send("g", {"type": "x"})).sent_count == 1
    assert (await receive(layer, "b")) == {"type": "x"}
    await assert_nothing(layer, "a")


async def test_group_send_to_empty_group(layer):
    """§8.40: an unknown group is not an error; the result says nobody got it."""
    assert await layer.group_send("nobody-here", {"type": "x"}) == SendResult()


async def test_group_send_counts_a_full_member(make_layer):
    """§8.41 (deliberate difference): a member at capacity is a counted failure whose
    error names its channel, never raised and never silently skipped."""
    layer = make_layer(capacity=1)
    await layer.group_add("g", "full")
    await layer.group_add("g", "roomy")
    await layer.send("full", {"type": "filler"})
    result = await layer.group_send("g", {"type": "x"})
    assert (result.sent_count, result.failed_count) == (1, 1)
    (error,) = result.errors
    assert isinstance(error, ChannelFull)
    assert error.channel == "full"
    assert (await receive(layer, "roomy")) == {"type": "x"}


async def test_group_expiry(make_layer):
    """§8.42: a membership older than group_expiry is dropped."""
    layer = make_layer(group_expiry=1)
    await layer.group_add("g", "chan")
    assert await layer.group_members("g") == {"chan"}
    await asyncio.sleep(1.2)  # the clock is the subject here
    assert await layer.group_members("g") == set()
    assert (await layer.group_send("g", {"type": "x"})).sent_count == 0


async def test_group_add_refreshes_membership(make_layer):
    """§8.38: re-adding refreshes the membership's age."""
    layer = make_layer(group_expiry=1)
    await layer.group_add("g", "chan")
    await asyncio.sleep(0.6)  # the clock is the subject here
    await layer.group_add("g", "chan")
    await asyncio.sleep(0.6)
    assert await layer.group_members("g") == {"chan"}


# 9. Expiry


async def test_message_expiry(make_layer):
    """§9.46: a message older than `expiry` is never delivered."""
    layer = make_layer(expiry=1)
    await layer.send("chan", {"type": "old"})
    await asyncio.sleep(1.2)  # the clock is the subject here
    await layer.send("chan", {"type": "new"})
    assert (await receive(layer, "chan")) == {"type": "new"}


async def test_expired_messages_free_capacity(make_layer):
    """§9.46: expired messages do not count against capacity."""
    layer = make_layer(expiry=1, capacity=1)
    await layer.send("chan", {"type": "old"})
    await asyncio.sleep(1.2)
    await layer.send("chan", {"type": "new"})
    assert (await receive(layer, "chan")) == {"type": "new"}


# 10. flush and close


async def test_flush_empties_messages_and_groups(layer):
    """§10.47: after flush there are no messages and no groups."""
    await layer.send("chan", {"type": "x"})
    await layer.group_add("g", "member")
    await layer.flush()
    await assert_nothing(layer, "chan")
    assert await layer.group_send("g", {"type": "x"}) == SendResult()
    assert await layer.group_members("g") == set()


async def test_close_is_available(layer):
    """§10.48: close() exists and can be awaited (Channels' test fixture calls it).
    It releases what the layer holds for this loop (a Redis layer's connections and
    tasks) without ending the layer: closing twice is fine, and the next call works,
    opening what it needs again."""
    assert inspect.iscoroutinefunction(layer.close)
    assert await layer.close() is None
    await layer.close()
    await layer.send("chan", {"type": "after-close"})
    assert (await receive(layer, "chan")) == {"type": "after-close"}
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    assert await layer.group_send("g", {"type": "group"}) == SendResult(1, 0, ())
    assert (await receive(layer, channel)) == {"type": "group"}
    assert await layer.group_members("g") == {channel}
    await layer.close()


# 12. Sync callers


def test_async_to_sync_from_threads_and_fresh_loops(make_layer):
    """§12.56-57: async_to_sync works from plain threads, each call on a new loop."""
    layer = make_layer()
    async_to_sync(layer.group_add)("g", "chan")
    errors = []

    def worker():
        try:
            for _ in range(3):
                async_to_sync(layer.group_send)("g", {"type": "x"})
        except Exception as exc:  # surfaced in the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    received = [async_to_sync(_receive_soon)(layer, "chan") for _ in range(9)]
    assert received == [{"type": "x"}] * 9


def test_receive_in_one_loop_send_from_another_thread(make_layer):
    """§12.57: a receiver blocked in one loop is woken by a send from another thread."""
    layer = make_layer()
    got = []

    async def wait_for_it():
        got.append(await receive(layer, "chan", within=5))

    thread = threading.Thread(target=async_to_sync(wait_for_it))
    async_to_sync(_send_when_waiting)(layer, "chan", thread)
    thread.join(10)
    assert got == [{"type": "x"}]


async def _send_when_waiting(layer, channel, thread):
    """Start `thread` (a reader on its own loop) and send once it is parked."""
    async with parking(layer, channel) as parked:
        thread.start()
        await parked(within=5)
    await layer.send(channel, {"type": "x"})


async def _receive_soon(layer, channel):
    return await receive(layer, channel)
