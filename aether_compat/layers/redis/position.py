"""Positions on the Redis wire: the mark that tells a receiving process which group,
epoch and offset a stored item has, and the two keys ("offset", "epoch") added to
an encoded message without decoding it.

A history group's item in an inbox reads `<deadline>\\n#<offset>:<epoch>:<group>
[@<confirm mark>] <tokens>\\n<payload>`: the mark goes first among the tokens (a
group name holds no space), and the payload stays sealed as the sender sealed it.
"""

import struct
from typing import NamedTuple

import ormsgpack

MARK = "#"


class Stamp(NamedTuple):
    """A message's place in its group's stream, as an item carries it."""

    group: str
    epoch: str
    offset: int


def mark(group: str, epoch: str, offset: int) -> str:
    return f"{MARK}{offset}:{epoch}:{group} "


def split_stamp(tokens: list[str]) -> tuple[Stamp | None, list[str]]:
    """(stamp, the other tokens) of an item's token list; no mark: no stamp."""
    if tokens and tokens[0].startswith(MARK):
        offset, epoch, group = tokens[0][1:].split(":", 2)
        return Stamp(group, epoch, int(offset)), tokens[1:]
    return None, tokens


def with_position(payload: bytes, epoch: str, offset: int) -> bytes:
    """`payload` (a msgpack map) with "offset" and "epoch" added at its end, so they
    win over keys of the same name; the sender's own bytes are not changed."""
    first = payload[0]
    if 0x80 <= first <= 0x8F:
        count, body = first & 0x0F, payload[1:]
    elif first == 0xDE:
        count, body = struct.unpack(">H", payload[1:3])[0], payload[3:]
    elif first == 0xDF:
        count, body = struct.unpack(">I", payload[1:5])[0], payload[5:]
    else:
        raise ValueError("not a msgpack map")
    count += 2
    if count <= 15:
        head = bytes([0x80 | count])
    elif count <= 0xFFFF:
        head = b"\xde" + struct.pack(">H", count)
    else:
        head = b"\xdf" + struct.pack(">I", count)
    return head + body + _OFFSET + ormsgpack.packb(offset) + _EPOCH + _str(epoch)


_OFFSET = ormsgpack.packb("offset")
_EPOCH = ormsgpack.packb("epoch")
_EPOCHS: dict[str, bytes] = {}


def _str(epoch: str) -> bytes:
    packed = _EPOCHS.get(epoch)
    if packed is None:
        if len(_EPOCHS) > 1024:
            _EPOCHS.clear()
        packed = _EPOCHS[epoch] = ormsgpack.packb(epoch)
    return packed
