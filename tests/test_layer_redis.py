"""Behaviour only the Redis layer has: instances that share one Redis, capacity and
expiry of process channels, presence, hosts settings, encryption, flush, sharding."""

import asyncio
import logging
import uuid

import pytest
import redis

from aether_compat import ChannelFull, SendResult
from aether_compat.errors import MemberUnreachable, SessionSendFailed
from aether_compat.layers import RedisChannelLayer
from aether_compat.layers.redis.config import parse_hosts, place
from tests.support.layers import REDIS_URL
from tests.support.redis_servers import redis_server

pytestmark = pytest.mark.redis


async def receive(layer, channel, within=3):
    async with asyncio.timeout(within):
        return await layer.receive(channel)


async def assert_nothing(layer, channel, wait=0.3):
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait):
            await layer.receive(channel)


# Instances sharing one Redis (two processes of one deployment)


async def test_group_spanning_two_instances_counts_every_member(make_redis):
    """A group with members in two instances: one stored message per instance, and
    the result counts every member."""
    a, b = make_redis(), make_redis()
    mine = [await a.new_channel() for _ in range(3)]
    theirs = [await b.new_channel() for _ in range(2)]
    for channel in mine + theirs:
        await a.group_add("room:x", channel)
    assert await b.group_members("room:x") == set(mine + theirs)
    assert await b.group_send("room:x", {"type": "m", "n": 1}) == SendResult(5, 0)
    for channel in mine:
        assert await receive(a, channel) == {"type": "m", "n": 1}
    for channel in theirs:
        assert await receive(b, channel) == {"type": "m", "n": 1}


async def test_direct_send_to_another_instance(make_redis):
    a, b = make_redis(), make_redis()
    channel = await b.new_channel()
    await a.send(channel, {"type": "hello"})
    assert await receive(b, channel) == {"type": "hello"}


async def test_only_the_owner_receives_on_its_channels(make_redis):
    """A process channel is read through its owner's inbox only."""
    a, b = make_redis(), make_redis()
    channel = await b.new_channel()
    with pytest.raises(ValueError, match="another layer instance"):
        await a.receive(channel)


async def test_full_member_in_another_instance_is_a_counted_failure(make_redis):
    """Capacity is counted in Redis, so a member of another process whose channel
    holds `capacity` messages is a failure for group_send and ChannelFull for send."""
    a, b = make_redis(capacity=2), make_redis(capacity=2)
    full, roomy = await b.new_channel(), await b.new_channel()
    await a.group_add("g", full)
    await a.group_add("g", roomy)
    await a.send(full, {"type": "x"})
    await a.send(full, {"type": "x"})
    with pytest.raises(ChannelFull) as info:
        await a.send(full, {"type": "x"})
    assert info.value.channel == full
    result = await a.group_send("g", {"type": "g"})
    assert (result.sent_count, result.failed_count) == (1, 1)
    assert isinstance(result.errors[0], ChannelFull)
    assert result.errors[0].channel == full
    assert await receive(b, roomy) == {"type": "g"}


async def test_receiving_frees_capacity_for_other_instances(make_redis):
    """A received message no longer counts, for senders in any process."""
    a, b = make_redis(capacity=1), make_redis(capacity=1)
    channel = await b.new_channel()
    await a.send(channel, {"type": "first"})
    with pytest.raises(ChannelFull):
        await a.send(channel, {"type": "second"})
    assert await receive(b, channel) == {"type": "first"}
    async with asyncio.timeout(3):  # the receiver's ack travels to Redis
        while True:
            try:
                await a.send(channel, {"type": "second"})
                break
            except ChannelFull:
                await asyncio.sleep(0.01)
    assert await receive(b, channel) == {"type": "second"}


async def test_own_channel_capacity_is_exact(make_redis):
    layer = make_redis(capacity=3)
    channel = await layer.new_channel()
    for _ in range(3):
        await layer.send(channel, {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "x"})
    await receive(layer, channel)
    await layer.send(channel, {"type": "x"})  # the ack goes first in the same batch


async def test_prefixes_are_isolated():
    a = RedisChannelLayer(hosts=[REDIS_URL], prefix=f"iso-{uuid.uuid4().hex[:8]}")
    b = RedisChannelLayer(hosts=[REDIS_URL], prefix=f"iso-{uuid.uuid4().hex[:8]}")
    try:
        await a.send("chan", {"type": "a"})
        await a.group_add("g", "chan")
        await assert_nothing(b, "chan")
        assert await b.group_members("g") == set()
    finally:
        for layer in (a, b):
            await layer.flush()
            await layer.close()


# Expiry: a message older than `expiry` is never delivered


@pytest.mark.parametrize("kind", ["process", "plain"])
async def test_no_stale_delivery(make_redis, kind):
    """§9.46 done right: an expired message is not delivered even if nothing else was
    sent meanwhile (channels_redis delivers it: #182)."""
    layer = make_redis(expiry=1)
    channel = await layer.new_channel() if kind == "process" else "plain-chan"
    await layer.send(channel, {"type": "old"})
    await asyncio.sleep(1.3)  # the clock is the subject here
    await assert_nothing(layer, channel)
    await layer.send(channel, {"type": "new"})
    assert await receive(layer, channel) == {"type": "new"}


async def test_expired_buffered_messages_free_capacity(make_redis):
    """Messages already pulled into the owner's buffer free their slot at expiry."""
    a, b = make_redis(expiry=1, capacity=1), make_redis(expiry=1, capacity=1)
    channel = await b.new_channel()
    await a.send(channel, {"type": "old"})
    await asyncio.sleep(1.5)  # the clock is the subject here
    await a.send(channel, {"type": "new"})
    assert await receive(b, channel) == {"type": "new"}


async def test_unread_expiry_leaves_groups_once_the_reader_stopped(make_redis):
    """A channel that let a message expire unread, with no reader for `expiry`
    seconds, leaves its groups."""
    layer = make_redis(expiry=1)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "read once"})
    await receive(layer, channel)  # its reader then stops
    await layer.group_send("g", {"type": "x"})
    await asyncio.sleep(2.2)  # the clock is the subject here
    assert await layer.group_members("g") == set()


# Presence


async def test_members_of_a_silent_instance_vanish_and_count_as_failures(make_redis):
    """An instance that stops announcing itself (here: its heartbeat stopped without
    leaving, as a crash would; close() leaves at once) leaves group_members within
    presence_timeout; the next group_send counts its members as unreachable once,
    then they are purged."""
    alive, dying = make_redis(), make_redis(presence_timeout=1)
    survivor = await alive.new_channel()
    lost = await dying.new_channel()
    await alive.group_add("g", survivor)
    await dying.group_add("g", lost)
    assert await alive.group_members("g") == {survivor, lost}
    await asyncio.wrap_future(dying._beat.stop())
    for _ in range(30):  # presence expiry is the clock under test
        if await alive.group_members("g") == {survivor}:
            break
        await asyncio.sleep(0.1)
    result = await alive.group_send("g", {"type": "x"})
    assert (result.sent_count, result.failed_count) == (1, 1)
    assert isinstance(result.errors[0], MemberUnreachable)
    assert result.errors[0].channel == lost
    assert await alive.group_send("g", {"type": "x"}) == SendResult(1, 0)
    with pytest.raises(MemberUnreachable):
        await alive.send(lost, {"type": "x"})


async def test_group_members_honours_group_expiry_per_process(make_redis):
    layer = make_redis(group_expiry=1)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await asyncio.sleep(1.2)  # the clock is the subject here
    assert await layer.group_members("g") == set()
    assert await layer.group_send("g", {"type": "x"}) == SendResult()


# Sessions


async def test_session_in_another_instance_gets_group_messages(make_redis):
    a, b = make_redis(), make_redis()
    channel = await b.new_channel()
    got = asyncio.Queue()
    await b.register_session(channel, got.put)
    await a.group_add("g", channel)
    assert (await a.group_send("g", {"type": "x"})).sent_count == 1
    await b.new_channel()  # starts b's pump if nothing else did
    async with asyncio.timeout(3):
        assert await got.get() == {"type": "x"}


async def test_failing_local_session_is_counted(make_redis):
    layer = make_redis()
    ok, broken = await layer.new_channel(), await layer.new_channel()

    async def fail(message):
        raise RuntimeError("socket gone")

    await layer.register_session(broken, fail)
    await layer.group_add("g", ok)
    await layer.group_add("g", broken)
    result = await layer.group_send("g", {"type": "x"})
    assert (result.sent_count, result.failed_count) == (1, 1)
    (error,) = result.errors  # named and wrapped, as the in-memory layer does
    assert isinstance(error, SessionSendFailed)
    assert error.channel == broken
    assert isinstance(error.__cause__, RuntimeError)
    assert await receive(layer, ok) == {"type": "x"}


# Settings


@pytest.mark.parametrize(
    ("hosts", "identity"),
    [
        pytest.param(None, "url:redis://localhost:6379", id="default"),
        pytest.param(["redis://h:1/2"], "url:redis://h:1/2", id="url"),
        pytest.param([("h", 1)], "h:1", id="tuple"),
        pytest.param([["h", 1]], "h:1", id="list"),
        pytest.param([{"address": "rediss://h:1"}], "url:rediss://h:1", id="dict"),
        pytest.param([{"host": "h", "port": 1, "db": 3}], "h:1/3", id="kwargs"),
        pytest.param(
            [{"sentinels": [("h", 26379)], "master_name": "m"}],
            "sentinel:m",
            id="sentinel",
        ),
        pytest.param(
            [{"address": "redis://h:1", "cluster": True}],
            "cluster:redis://h:1",
            id="cluster",
        ),
    ],
)
def test_hosts_formats(hosts, identity):
    """§1.7: every channels_redis host format (and Cluster) is accepted."""
    (host,) = parse_hosts(hosts)
    assert host.identity == identity


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ("redis://h", "must be a list"),
        (["http://h"], "redis://"),
        ([("h",)], "2 items"),
        ([{"sentinels": []}], "master_name"),
        ([42], "URLs"),
    ],
)
def test_bad_hosts_fail_at_startup(hosts, message):
    with pytest.raises(ValueError, match=message):
        RedisChannelLayer(hosts=hosts)


def test_channels_redis_config_keys_are_accepted():
    """Switching from channels_redis is one BACKEND line: its CONFIG keys work."""
    layer = RedisChannelLayer(
        hosts=[REDIS_URL],
        prefix="asgi",
        expiry=30,
        group_expiry=600,
        capacity=50,
        channel_capacity={"http.*": 200},
        symmetric_encryption_keys=["secret"],
        random_prefix_length=8,
        serializer_format="msgpack",
        on_disconnect=None,
        on_reconnect=None,
    )
    assert layer.get_capacity("http.request") == 200
    with pytest.raises(ValueError, match="serializer_format"):
        RedisChannelLayer(serializer_format="pickle")
    with pytest.raises(ValueError, match="prefix"):
        RedisChannelLayer(prefix="a{b}")


def test_placement_is_stable_and_spread():
    """Rendezvous placement: same answer whatever the host order; adding a host moves
    only the tags it now wins."""
    three = parse_hosts([f"redis://h{i}:6379" for i in range(3)])
    four = [*three, *parse_hosts(["redis://h3:6379"])]
    tags = [f"p.{i:012x}" for i in range(2000)]
    before = [three[place(t, three)].identity for t in tags]
    reordered = list(reversed(three))
    assert before == [reordered[place(t, reordered)].identity for t in tags]
    after = [four[place(t, four)].identity for t in tags]
    moved = sum(1 for x, y in zip(before, after, strict=True) if x != y)
    assert 0.15 < moved / len(tags) < 0.35
    assert all(
        y == "url:redis://h3:6379" for x, y in zip(before, after, strict=True) if x != y
    )


async def test_channel_capacity_applies_to_group_members(make_redis):
    """Group scripts cannot match globs, so group_add stores non-default capacities."""
    layer = make_redis(capacity=5, channel_capacity={"tiny*": 1})
    await layer.group_add("g", "tiny-1")
    await layer.send("tiny-1", {"type": "x"})
    result = await layer.group_send("g", {"type": "x"})
    assert (result.sent_count, result.failed_count) == (0, 1)


# Encryption


async def test_encrypted_messages_are_unreadable_in_redis(make_redis):
    a = make_redis(symmetric_encryption_keys=["k1"])
    b = make_redis(symmetric_encryption_keys=["k2", "k1"])  # rotation: k1 still read
    channel = await b.new_channel()
    await a.send("plain-secret", {"type": "x", "text": "attack at dawn"})
    raw = redis.Redis.from_url(REDIS_URL)
    stored = raw.lrange(f"{a.prefix}:{{c.plain-secret}}:q", 0, -1)
    raw.close()
    assert stored
    assert b"attack at dawn" not in stored[0]
    assert await receive(b, "plain-secret") == {"type": "x", "text": "attack at dawn"}
    await a.send(channel, {"type": "y"})
    assert await receive(b, channel) == {"type": "y"}


async def test_wrong_key_is_logged_not_delivered(make_redis, caplog):
    a = make_redis(symmetric_encryption_keys=["right"])
    b = make_redis(symmetric_encryption_keys=["wrong"])
    channel = await b.new_channel()
    with caplog.at_level(logging.ERROR, "aether_compat.layers.redis"):
        await a.send(channel, {"type": "x"})
        await assert_nothing(b, channel, wait=0.5)
    assert "symmetric_encryption_keys" in caplog.text


# flush


async def test_flush_works_without_keys_and_spares_other_prefixes():
    """flush() uses SCAN (KEYS is disabled on this server) and deletes only this
    prefix's keys: 'asgi' does not take 'asgi2' with it."""
    with redis_server("--rename-command", "KEYS", "") as server:
        mine = RedisChannelLayer(hosts=[server.url], prefix="asgi")
        other = RedisChannelLayer(hosts=[server.url], prefix="asgi2")
        try:
            await mine.send("chan", {"type": "x"})
            await mine.group_add("g", await mine.new_channel())
            await other.send("chan", {"type": "kept"})
            await mine.flush()
            await assert_nothing(mine, "chan")
            assert await mine.group_members("g") == set()
            assert await receive(other, "chan") == {"type": "kept"}
        finally:
            await other.close()
            await mine.close()


# Several hosts


async def test_direct_sends_to_process_channels_arrive_with_several_hosts(make_redis):
    """Sends and receives agree on the shard (channels_redis loses (N-1)/N here)."""
    hosts = [REDIS_URL.rsplit("/", 1)[0] + f"/{db}" for db in (0, 1, 2, 3)]
    a, b = make_redis(hosts=hosts), make_redis(hosts=hosts)
    channels = [await b.new_channel() for _ in range(20)]
    for index, channel in enumerate(channels):
        await a.send(channel, {"type": "x", "i": index})
        await a.send(f"plain-{index}", {"type": "p", "i": index})
        await a.group_add("room:many", channel)
    assert len(dbs_holding(a.prefix, hosts)) >= 2  # 20 plain channels spread out
    for index, channel in enumerate(channels):
        assert await receive(b, channel) == {"type": "x", "i": index}
        assert await receive(b, f"plain-{index}") == {"type": "p", "i": index}
    assert await a.group_members("room:many") == set(channels)
    assert await a.group_send("room:many", {"type": "g"}) == SendResult(20, 0)
    for channel in channels:
        assert await receive(b, channel) == {"type": "g"}


def dbs_holding(prefix, hosts):
    used = set()
    for index, url in enumerate(hosts):
        raw = redis.Redis.from_url(url)
        if any(True for _ in raw.scan_iter(match=f"{prefix}:*", count=1000)):
            used.add(index)
        raw.close()
    return used


# Event loops come and go (async_to_sync)


def test_pump_moves_to_the_next_loop_and_loses_nothing(make_redis):
    """The inbox's tasks start on the loop that first needs them; when async_to_sync
    closes that loop mid-BLMOVE, the next loop starts them again and nothing that
    was sent meanwhile is lost."""
    from asgiref.sync import async_to_sync

    layer, sender = make_redis(), make_redis()
    channel = async_to_sync(layer.new_channel)()  # its loop closes right after
    for index in range(3):
        async_to_sync(sender.send)(channel, {"type": "x", "i": index})
    got = [async_to_sync(receive)(layer, channel) for _ in range(3)]
    assert [message["i"] for message in got] == [0, 1, 2]


async def test_malformed_inbox_item_is_skipped(make_redis, caplog):
    """An item not written by the layer is logged and skipped; the pump goes on."""
    layer = make_redis()
    channel = await layer.new_channel()
    raw = redis.Redis.from_url(REDIS_URL)
    raw.rpush(layer._presence.base + "q", b"garbage without newlines")
    raw.close()
    with caplog.at_level(logging.ERROR, "aether_compat.layers.redis"):
        await layer.send(channel, {"type": "after"})
        assert await receive(layer, channel) == {"type": "after"}
    assert "malformed" in caplog.text
