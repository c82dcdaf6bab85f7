"""`layer.group_names()`: every group with members now, on both layers (Redis
lists them with SCAN over the group keys), for the live admin page."""

from aether_compat.layers.redis.idempotency import claim_key
from aether_compat.layers.redis.keys import group_key


async def test_group_names_lists_groups_with_members(layer):
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room:one", a)
    await layer.group_add("room:two", a)
    await layer.group_add("room:two", b)
    assert await layer.group_names() == ["room:one", "room:two"]
    assert layer.membership_count() == 3
    await layer.group_discard("room:one", a)
    assert await layer.group_names() == ["room:two"]


async def test_idempotency_claims_do_not_show_as_groups(facade_layer):
    from aether_compat import Channels

    channel = await facade_layer.new_channel()
    await facade_layer.group_add("room:c", channel)
    await Channels.group("room:c").broadcast("x", idempotency_key="k")
    assert await facade_layer.group_names() == ["room:c"]


def test_a_group_claim_sits_in_the_group_slot():
    """The claim shares the group key's hash tag, so one Cluster slot holds both."""
    tag, key = claim_key("asgi", "k", group="room:x", channel=None)
    assert key.startswith("asgi:{g.room:x}:i:")
    assert group_key("asgi", "room:x").startswith("asgi:{" + tag + "}")
