"""Idempotency keys in Redis: one `SET NX PX` in the slot of the target (the
group's hash tag, or the channel's box), made before the fan-out. Two concurrent
sends with one key: one wins the claim, the other is a duplicate. A retry after a
first attempt that timed out finds the claim and delivers nothing again: at most
once (a first attempt whose claim landed but whose fan-out failed is not retried
by the key either; the caller sees that failure in its own SendResult)."""

from ...errors import MemberUnreachable
from ..idempotency import digest
from .connections import Connections, command
from .keys import box_base, group_tag, route
from .util import REDIS_FAILURES, RedisLayerStats


def claim_key(
    prefix: str, key: str, *, group: str | None, channel: str | None
) -> tuple[str, str]:
    """(hash tag, Redis key) of a claim: in the group's slot, or the channel's."""
    if group is not None:
        tag = group_tag(group)
        return tag, f"{prefix}:{{{tag}}}:i:{digest(key)}"
    if channel is None:
        raise TypeError("a claim names a group or a channel")
    box, token = route(channel)
    who = token or ""
    return box, f"{box_base(prefix, box)}i:{who}:{digest(key)}"


async def claim(
    connections: Connections,
    stats: RedisLayerStats,
    prefix: str,
    key: str,
    window: float,
    *,
    group: str | None = None,
    channel: str | None = None,
) -> bool:
    """True when this call claimed `key` for its target (deliver), False when it
    was claimed within `window` seconds (a duplicate). Raises
    `MemberUnreachable` when Redis does not answer (nothing is sent then)."""
    tag, name = claim_key(prefix, key, group=group, channel=channel)
    window_ms = max(1, int(window * 1000))
    try:
        (done,) = await connections.execute(
            [(tag, command("SET", name, b"1", "NX", "PX", window_ms))]
        )
    except REDIS_FAILURES as exc:
        stats.redis_error(exc, failed_send=True)
        raise MemberUnreachable(
            group or channel or "", f"Redis did not take the idempotency key: {exc!r}"
        ) from exc
    return bool(done)
