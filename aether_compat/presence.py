"""Presence of people in groups: who is here, on which connections, and the events
that tell members when that changes (for groups with `presence_events`).

Each membership may carry a small metadata dict (user id, display name, connected
at, device). Presence is keyed by user: the metadata's "user" value, or for an
anonymous member an opaque id that never reveals its channel name. One user across
tabs and servers is one entry holding the list of its connections' metadata.

Events, sent by the layer to the members of a group with `presence_events`:

- `{"type": "aether.presence_state", "group": g, "presence": {key: [meta, ...]}}`
  to a member right after it joins: the whole state;
- `{"type": "aether.presence_diff", "group": g, "joins": {key: [meta, ...]},
  "leaves": {key: [meta, ...]}}` to every member, batched: a user's first connection
  is a join, its last connection's end (after `presence_grace`) a leave.
"""

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .errors import InvalidMessage
from .layers import codec

PRESENCE_STATE = "aether.presence_state"
PRESENCE_DIFF = "aether.presence_diff"
MAX_META_BYTES = 1024
"""A bound on one membership's metadata, encoded: presence is sent to every member."""
DIFF_WINDOW = 0.1
"""Seconds of changes that go out as one diff (at most 10 diffs a second)."""

_PROCESS_SECRET = secrets.token_bytes(16)
_ANON_SALT = b"aether_compat.presence.anonymous"

Presence = dict[str, list[dict[str, Any]]]
"""A group's presence: user key -> the metadata of each of its connections."""


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many connections a group has, and how many distinct users they are."""

    connections: int = 0
    users: int = 0


def check_meta(meta: Any) -> dict[str, Any]:
    """`meta` if it is a dict with string keys that msgpack can carry within
    `MAX_META_BYTES`; else a `TypeError` saying which rule it broke."""
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise TypeError(f"presence metadata must be a dict with str keys, got {meta!r}")
    user = meta.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise TypeError(
            f"presence metadata 'user' must be a non-empty str, got {user!r}"
        )
    try:
        size = len(codec.encode(meta))
    except (InvalidMessage, TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"presence metadata must be msgpack-able: {exc}") from None
    if size > MAX_META_BYTES:
        raise TypeError(
            f"presence metadata is {size} bytes encoded; at most {MAX_META_BYTES}"
        )
    return meta


def presence_key(meta: dict[str, Any], channel: str) -> str:
    """Whom a membership belongs to: its "user", else an opaque id of the channel:
    unguessable, never its name, and the same in every process of a deployment
    (keyed by Django's SECRET_KEY), so a process can name another's anonymous
    members without anything stored per membership."""
    user = meta.get("user")
    if user:
        return str(user)
    mac = hashlib.blake2b(channel.encode(), key=_anon_secret(), digest_size=8)
    return "anon-" + mac.hexdigest()


def _anon_secret() -> bytes:
    """Derived from SECRET_KEY (read each time: tests may override it); outside a
    configured Django project, a secret of this process."""
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:
        key = ""
    return _derived(key) if key else _PROCESS_SECRET


@functools.lru_cache(maxsize=4)
def _derived(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else bytes(key)
    return hmac.digest(raw, _ANON_SALT, "sha256")
