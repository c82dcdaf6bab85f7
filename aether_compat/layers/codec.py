"""Message dict <-> msgpack bytes, refusing at send time what Redis could not carry.

Both layers encode every message this way, so a message that works in memory works on
Redis too: tuples arrive as lists, and a datetime, a model instance or a dict key that
is not a `str` is refused with the key that holds it.
"""

from typing import Any

import msgpack

from ..errors import InvalidMessage

RESERVED_KEY = "__asgi_channel__"
ALLOWED = "str, bytes, int (64-bit), float, bool, None, list, tuple and dict"
MAX_DEPTH = 511  # msgpack's nesting limit: no value may sit deeper than this

# Values not looked into. Anything else (containers, subclasses, unknown types) sends
# `encode` to `_check_keys`; msgpack itself refuses what it cannot pack.
_SCALARS = frozenset((str, int, float, bool, type(None), bytes))

_packer = msgpack.Packer(use_bin_type=True)


def encode(message: Any) -> bytes:
    """Serialise a layer message; raise `InvalidMessage` naming what cannot be sent."""
    if not isinstance(message, dict):
        raise InvalidMessage(f"message must be a dict, got {type(message).__name__}")
    if RESERVED_KEY in message:
        raise InvalidMessage(f"message key {RESERVED_KEY!r} is reserved for the layer")
    for key, value in message.items():  # the fast path: flat messages, str keys
        if type(key) is not str or type(value) not in _SCALARS:
            _check_keys(message)
            break
    try:
        return _packer.pack(message)
    except (TypeError, ValueError, OverflowError):
        _packer.reset()
        raise InvalidMessage(_describe_unencodable(message)) from None


def decode(data: bytes) -> dict[str, Any]:
    """Rebuild a message: a fresh object each call, so receivers never share state."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _check_keys(message: dict[Any, Any]) -> None:
    """Refuse a dict key that is not a `str`, at any depth, naming where it is."""
    if _keys_are_str(message):
        return
    found = _find_bad_key(message)
    if found is None:  # a str subclass, or no dict at all: nothing to refuse
        return
    trail, key = found
    where = f"message key {_path(trail)!r} holds" if trail else "the message has"
    raise InvalidMessage(
        f"{where} a dict key {_short_repr(key)} ({type(key).__name__}): "
        f"{_key_reason(key)}"
    )


def _keys_are_str(message: dict[Any, Any]) -> bool:
    """The tight loop: whether every key of every dict inside `message` is exactly a
    `str`, looking only into dicts, lists and tuples. False for anything unusual
    (subclasses, unknown types, nesting deeper than msgpack allows, a message that
    contains itself), which `_find_bad_key` then looks at closely."""
    pending: list[list[Any]] = [[message]]  # containers still to see, per depth
    while pending:
        level = pending[-1]
        if not level:
            pending.pop()
            continue
        value = level.pop()
        kind = type(value)
        if kind is dict:
            inner = []
            for key, item in value.items():
                if type(key) is not str:
                    return False
                if type(item) not in _SCALARS:
                    inner.append(item)
        elif kind is list or kind is tuple:
            if _SCALARS.issuperset(map(type, value)):
                continue
            inner = [item for item in value if type(item) not in _SCALARS]
        else:
            return False
        if inner:
            if len(pending) > MAX_DEPTH:
                return False
            pending.append(inner)
    return True


def _find_bad_key(message: dict[Any, Any]) -> tuple[tuple[Any, ...], Any] | None:
    """(the keys and indexes leading to it, the key) for the first dict key that is
    not a `str`, depth first; refuses a message nested too deep."""
    pending: list[list[tuple[Any, tuple[Any, ...]]]] = [[(message, ())]]
    while pending:
        if not pending[-1]:
            pending.pop()
            continue
        value, trail = pending[-1].pop()
        if isinstance(value, dict):
            steps: Any = value.items()
        elif isinstance(value, list | tuple):
            steps = enumerate(value)
        else:
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
    """The first (trail, value) that msgpack refuses, depth first (every dict key is
    a `str` by now: `_check_keys` ran)."""
    if depth > MAX_DEPTH:
        return trail, _TOO_DEEP
    if isinstance(value, dict):
        steps: Any = value.items()
    elif isinstance(value, list | tuple):
        steps = enumerate(value)
    else:
        try:
            msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            return trail, value
        return None
    for step, item in steps:
        if found := _find_unencodable(item, (*trail, step), depth + 1):
            return found
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
