"""How presence is written in Redis: a connection's field and value in its
group's `pc` hash (people_scripts.py), the sequence floor, and states read back."""

from typing import Any

from ...presence import Presence
from .. import codec
from .keys import route
from .util import now_ms


def group_base(prefix: str, group: str) -> str:
    return f"{prefix}:{{g.{group}}}:"


def encode_value(key: str, meta: dict[str, Any]) -> bytes:
    raw = key.encode()
    return b"%d:%s%s" % (len(raw), raw, codec.encode(meta))


def decode_value(value: bytes) -> tuple[str, bytes]:
    """(key, encoded meta) of a stored connection."""
    size, rest = value.split(b":", 1)
    n = int(size)
    return rest[:n].decode(), rest[n:]


def field_of(channel: str) -> tuple[str, str]:
    """(box, field): how a connection is named in its group's `pc` hash."""
    box, token = route(channel)
    return box, box if token is None else f"{box} {token}"


def seq_floor() -> str:
    return str(now_ms() * 1000)


def state_of(values: list[bytes], ghosts: list[bytes]) -> Presence:
    """A presence from stored values and the keys in grace (key, meta, ...)."""
    state: Presence = {}
    for value in values:
        key, meta = decode_value(value)
        state.setdefault(key, []).append(codec.decode(meta))
    for i in range(0, len(ghosts), 2):
        key = ghosts[i].decode()
        if key not in state:
            state[key] = [codec.decode(ghosts[i + 1])]
    return state
