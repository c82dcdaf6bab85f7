"""Checks of the Redis layer's settings that channels_redis does not have, and the
Fernet keys of `symmetric_encryption_keys` (derived as channels_redis derives them)."""

import base64
import hashlib
from collections.abc import Sequence
from typing import Any


def check_settings(
    prefix: Any, serializer: Any, random_length: Any, presence: Any
) -> None:
    """Raise at startup, naming the setting, for values channels_redis would not
    take either (and for a prefix with braces, which would break hash tags)."""
    problems = {
        "prefix": (prefix, "a str without braces"),
        "serializer_format": (serializer, "'msgpack' or 'json'"),
        "random_prefix_length": (random_length, "an int >= 0"),
        "presence_timeout": (presence, "a positive number"),
    }
    valid = {
        "prefix": isinstance(prefix, str) and not {"{", "}"} & set(prefix),
        "serializer_format": serializer in {"msgpack", "json"},
        "random_prefix_length": _is_number(random_length, int) and random_length >= 0,
        "presence_timeout": _is_number(presence, int | float) and presence > 0,
    }
    for name, ok in valid.items():
        if not ok:
            value, rule = problems[name]
            raise ValueError(
                f"channel layer setting {name} must be {rule}, got {value!r}"
            )


def _is_number(value: Any, kind: Any) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def crypter(keys: Sequence[str | bytes] | None) -> Any:
    """A MultiFernet with channels_redis' key derivation (SHA-256 of each key), so the
    same settings encrypt the same way; the first key encrypts, all decrypt."""
    if not keys:
        return None
    if isinstance(keys, str | bytes):
        raise ValueError(
            "channel layer setting symmetric_encryption_keys must be a list of keys"
        )
    from cryptography.fernet import Fernet, MultiFernet

    fernets = []
    for key in keys:
        raw = key.encode() if isinstance(key, str) else key
        fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
    return MultiFernet(fernets)
