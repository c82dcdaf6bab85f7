"""The in-memory layer's group history: one stream per group that keeps history
(see `group_options`), in this process only, so it is lost on restart and the
next message after a restart starts a new epoch.

A stream holds the group's epoch (a random token), its last offset and at most
`history_size` encoded messages, each kept `history_ttl` seconds. The rule for
expiry: a stream whose newest message (or, with none yet, its creation) is older
than `history_ttl` is forgotten whole, and the next message or read starts a new
epoch at offset 1; a stream still in use only drops its old messages, and keeps its
epoch and offsets. So the memory history holds is bounded by the settings: the
messages by `history_size` and `history_ttl`, and a group that went quiet costs
nothing once its `history_ttl` has passed.

Every method runs under the layer's lock (the caller holds it): offsets are given
in the same step as the fan-out, so history and live delivery agree on the order.
"""

import secrets
from collections import OrderedDict, deque
from typing import Any

import ormsgpack

from ..history import POSITION_KEYS, Position
from . import codec
from .group_options import GroupOptions


class _Stream:
    __slots__ = ("entries", "epoch", "offset", "touched")

    def __init__(self, size: int, now: float) -> None:
        self.epoch = secrets.token_hex(8)
        self.offset = 0
        self.entries: deque[tuple[float, bytes]] = deque(maxlen=size)
        self.touched = now


class MemoryHistory:
    """The streams of one in-memory layer's history groups."""

    __slots__ = ("_by_ttl", "_streams")

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        # Streams by their ttl, least recently touched first: the dead ones are
        # found at the front, so forgetting them costs nothing per message.
        self._by_ttl: dict[float, OrderedDict[str, _Stream]] = {}

    def append(
        self, group: str, options: GroupOptions, payload: bytes, now: float
    ) -> bytes:
        """Give the encoded message the group's next position, keep it, and return
        the payload that carries that position (what every member gets)."""
        stream = self._stream(group, options, now)
        stream.offset += 1
        stream.touched = now
        self._by_ttl[options.history_ttl].move_to_end(group)
        payload = with_position(payload, stream.offset, stream.epoch)
        stream.entries.append((now + options.history_ttl, payload))
        return payload

    def newest(self, group: str, options: GroupOptions, now: float) -> bytes | None:
        """The group's newest message still in history, for `last_on_join`."""
        stream = self._streams.get(group)
        if stream is None or now - stream.touched > options.history_ttl:
            return None
        _trim(stream, now)
        return stream.entries[-1][1] if stream.entries else None

    def read(
        self,
        group: str,
        options: GroupOptions,
        since: Position | None,
        limit: int | None,
        now: float,
    ) -> tuple[str, int, list[bytes], bool]:
        """(epoch, offset, payloads, recovered) as `History` defines them; the
        payloads are decoded by the caller, outside the lock. A read starts the
        stream if there is none, so the position it reports is the one the next
        message continues."""
        stream = self._stream(group, options, now)
        _trim(stream, now)
        entries = stream.entries
        if since is None:
            chosen = list(entries)[-limit:] if limit else list(entries)
            return stream.epoch, stream.offset, [p for _, p in chosen], True
        missed = stream.offset - since.offset
        oldest = stream.offset - len(entries) + 1
        if (
            since.epoch != stream.epoch
            or missed < 0
            or since.offset + 1 < oldest
            or (limit is not None and missed > limit)
        ):
            return stream.epoch, stream.offset, [], False
        chosen = list(entries)[len(entries) - missed :] if missed else []
        return stream.epoch, stream.offset, [p for _, p in chosen], True

    def forget_all(self) -> None:
        self._streams.clear()
        self._by_ttl.clear()

    @property
    def streams(self) -> int:
        """How many groups have a stream now (for tests and benchmarks)."""
        return len(self._streams)

    def _stream(self, group: str, options: GroupOptions, now: float) -> _Stream:
        """The group's live stream, a new one (new epoch) if it had none or it
        expired whole; dead streams of the same ttl are forgotten on the way."""
        ttl = options.history_ttl
        order = self._by_ttl.get(ttl)
        if order is None:
            order = self._by_ttl[ttl] = OrderedDict()
        while order:
            name, oldest = next(iter(order.items()))
            if now - oldest.touched <= ttl:
                break
            del order[name]
            del self._streams[name]
        stream = self._streams.get(group)
        if stream is None:
            stream = self._streams[group] = _Stream(options.history_size, now)
            order[group] = stream
        return stream


def _trim(stream: _Stream, now: float) -> None:
    entries = stream.entries
    while entries and entries[0][0] < now:
        entries.popleft()


def strip_position(message: dict[str, Any]) -> dict[str, Any]:
    """The message without the keys the layer sets (the sender's dict is kept)."""
    return {k: v for k, v in message.items() if k not in POSITION_KEYS}


def with_position(payload: bytes, offset: int, epoch: str) -> bytes:
    """The encoded message with `"offset"` and `"epoch"` added, without encoding
    it again: a msgpack map is its entry count followed by its entries, so the two
    entries are appended and the count raised by two. `payload` must not hold
    either key already (`strip_position`)."""
    tail = ormsgpack.packb({"offset": offset, "epoch": epoch})[1:]
    head = payload[0]
    if head < 0x8E:  # fixmap of at most 13 entries: still a fixmap
        return bytes((head + 2,)) + payload[1:] + tail
    if head <= 0x8F:
        count, body = head - 0x80, payload[1:]
    elif head == 0xDE:
        count, body = int.from_bytes(payload[1:3]), payload[3:]
    else:  # 0xDF: map32
        count, body = int.from_bytes(payload[1:5]), payload[5:]
    count += 2
    if count < 0x10000:
        return b"\xde" + count.to_bytes(2) + body + tail
    return b"\xdf" + count.to_bytes(4) + body + tail


def decoded(payloads: list[bytes]) -> list[dict[str, Any]]:
    return [codec.decode(payload) for payload in payloads]
