"""Message dict <-> msgpack bytes, refusing at send time what Redis could not carry.

Both layers encode every message this way, so a message that works in memory works on
Redis too: tuples arrive as lists, and a datetime or a model instance is refused with
the key that holds it.
"""

from typing import Any

import msgpack

from ..errors import InvalidMessage

RESERVED_KEY = "__asgi_channel__"
ALLOWED = "str, bytes, int (64-bit), float, bool, None, list, tuple and dict"

_packer = msgpack.Packer(use_bin_type=True)


def encode(message: Any) -> bytes:
    """Serialise a layer message; raise `InvalidMessage` naming what cannot be sent."""
    if not isinstance(message, dict):
        raise InvalidMessage(f"message must be a dict, got {type(message).__name__}")
    if RESERVED_KEY in message:
        raise InvalidMessage(f"message key {RESERVED_KEY!r} is reserved for the layer")
    try:
        return _packer.pack(message)
    except (TypeError, ValueError, OverflowError):
        _packer.reset()
        raise InvalidMessage(_describe_unencodable(message)) from None


def decode(data: bytes) -> dict[str, Any]:
    """Rebuild a message: a fresh object each call, so receivers never share state."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _describe_unencodable(message: dict[str, Any]) -> str:
    path, value = _find_unencodable(message, "") or ("", message)
    where = f"key {path!r}" if path else "the message"
    return (
        f"message value at {where} cannot be sent over a channel layer: "
        f"{type(value).__name__} {_short_repr(value)} is not one of {ALLOWED}"
    )


def _find_unencodable(value: Any, path: str) -> tuple[str, Any] | None:
    """The first (path, value) that msgpack refuses, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | bytes | int) or isinstance(key, bool):
                return (f"{path}[{key!r}]" if path else repr(key)), key
            found = _find_unencodable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_unencodable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return path, value
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
