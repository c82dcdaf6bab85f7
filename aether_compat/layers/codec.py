"""Message dict <-> msgpack bytes, refusing at send time what Redis could not carry.

Both layers encode every message this way, so a message that works in memory works on
Redis too: tuples arrive as lists, and a datetime, a model instance or a dict key that
is not a `str` is refused with the key that holds it.

ormsgpack packs and checks in one pass (it takes only `str` dict keys and refuses
what msgpack cannot carry); the slow path after a refusal finds the culprit and
names its path.
"""

from typing import Any

import ormsgpack

from ..errors import InvalidMessage

RESERVED_KEY = "__asgi_channel__"
ALLOWED = "str, bytes, int (64-bit), float, bool, None, list, tuple and dict"
MAX_DEPTH = 254  # ormsgpack's nesting limit: no value may sit deeper than this

# Types ormsgpack would turn into something else (a datetime into a string, a
# dataclass into a dict, ...): handed to `_refuse` instead, so they are refused.
_KEEP_OUT = (
    ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
)


def encode(message: Any) -> bytes:
    """Serialise a layer message; raise `InvalidMessage` naming what cannot be sent."""
    if not isinstance(message, dict):
        raise InvalidMessage(f"message must be a dict, got {type(message).__name__}")
    if RESERVED_KEY in message:
        raise InvalidMessage(f"message key {RESERVED_KEY!r} is reserved for the layer")
    try:
        return ormsgpack.packb(message, default=_refuse, option=_KEEP_OUT)
    except TypeError:
        return _encode_slowly(message)


def decode(data: bytes) -> dict[str, Any]:
    """Rebuild a message: a fresh object each call, so receivers never share state."""
    return ormsgpack.unpackb(data)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} cannot be sent")


def _encode_slowly(message: dict[Any, Any]) -> bytes:
    """After a refusal: name the dict key or the value that caused it; a message
    whose only fault is `str` subclasses as keys is sent with plain `str` keys."""
    found = _find_bad_key(message)
    if found is not None:
        trail, key = found
        where = f"message key {_path(trail)!r} holds" if trail else "the message has"
        raise InvalidMessage(
            f"{where} a dict key {_short_repr(key)} ({type(key).__name__}): "
            f"{_key_reason(key)}"
        )
    plain = _plain_keys(message)
    try:
        return ormsgpack.packb(plain, default=_refuse, option=_KEEP_OUT)
    except TypeError:
        raise InvalidMessage(_describe_unencodable(plain)) from None


def _plain_keys(value: Any) -> Any:
    """`value` with every dict key a plain `str` (keys here are `str` or subclasses)."""
    if isinstance(value, dict):
        return {str(key): _plain_keys(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_keys(item) for item in value]
    return value


def _find_bad_key(message: dict[Any, Any]) -> tuple[tuple[Any, ...], Any] | None:
    """(the keys and indexes leading to it, the key) for the first dict key that is
    not a `str`, depth first; refuses a message nested too deep."""
    pending: list[list[tuple[Any, tuple[Any, ...]]]] = [[(message, ())]]
    while pending:
        if not pending[-1]:
            pending.pop()
            continue
        value, trail = pending[-1].pop()
        steps = _steps(value)
        if steps is None:
            continue
        inner = []
        for step, item in steps:
            if isinstance(value, dict) and not isinstance(step, str):
                return trail, step
            inner.append((item, (*trail, step)))
        if inner and len(pending) > MAX_DEPTH:
            raise InvalidMessage(_too_deep(_path(trail)))
        pending.append(inner[::-1])
    return None


def _steps(value: Any) -> Any:
    """(key or index, item) pairs of a dict, list or tuple; None for anything else."""
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, list | tuple):
        return enumerate(value)
    return None


def _key_reason(key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return (
            "int keys are refused because channels_redis receivers decode with "
            "msgpack's strict_map_key and would fail on them; use str keys"
        )
    if isinstance(key, tuple):
        return "a tuple arrives as a list, which cannot be a dict key; use str keys"
    return "dict keys in a channel layer message must be str"


def _too_deep(path: str) -> str:
    if len(path) > 60:
        path = path[:57] + "..."
    return (
        f"message value at key {path!r} is nested more than {MAX_DEPTH} levels deep "
        "(or contains itself); it cannot be sent over a channel layer"
    )


def _path(trail: tuple[Any, ...]) -> str:
    """`a.b[0].c` from the keys and indexes that lead to a value."""
    path = ""
    for step in trail:
        if isinstance(step, str):
            path = f"{path}.{step}" if path else step
        else:
            path += f"[{step}]"
    return path


def _describe_unencodable(message: dict[str, Any]) -> str:
    found = _find_unencodable(message, (), 0)
    if found is None:
        return f"message cannot be sent over a channel layer: {ALLOWED} only"
    trail, value = found
    if value is _TOO_DEEP:
        return _too_deep(_path(trail))
    where = f"key {_path(trail)!r}" if trail else "the message"
    return (
        f"message value at {where} cannot be sent over a channel layer: "
        f"{type(value).__name__} {_short_repr(value)} is not one of {ALLOWED}"
    )


_TOO_DEEP = object()


def _find_unencodable(
    value: Any, trail: tuple[Any, ...], depth: int
) -> tuple[tuple[Any, ...], Any] | None:
    """The first (trail, value) that cannot be packed, depth first (every dict key
    is a plain `str` by now)."""
    if depth > MAX_DEPTH:
        return trail, _TOO_DEEP
    steps = _steps(value)
    if steps is None:
        try:
            ormsgpack.packb(value, default=_refuse, option=_KEEP_OUT)
        except TypeError:
            return trail, value
        return None
    for step, item in steps:
        if found := _find_unencodable(item, (*trail, step), depth + 1):
            return found
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
