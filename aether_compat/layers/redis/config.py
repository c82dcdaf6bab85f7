"""What the Redis layer's settings mean: the `hosts` (every format channels_redis
accepts, plus Redis Cluster) as redis-py clients and the placement of keys on them,
the checks channels_redis does not make, and `symmetric_encryption_keys`."""

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as SyncCluster
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel

from .util import logger

DEFAULT_HOST = "redis://localhost:6379"

# Commands answer within this many seconds or the shard counts as down; blocking
# pops wait at most BLOCK_SECONDS server-side, so their sockets allow that much more.
COMMAND_TIMEOUT = 5.0
BLOCK_SECONDS = 5
PARKED_CONNECTIONS = 10_000  # the blocking pool's limit: parked receives + the pump

HostSpec = str | tuple[str, int] | list[Any] | Mapping[str, Any]
Client = Redis | RedisCluster


@dataclass(frozen=True)
class Host:
    """One entry of `hosts`, normalised: how to connect, and a stable identity."""

    kind: str  # "url", "params", "sentinel" or "cluster"
    options: dict[str, Any] = field(hash=False, compare=False)
    identity: str

    def connect(self, *, blocking: bool, name: str | None = None) -> Client:
        """A new client with deliberate timeouts. Commands are never retried by
        redis-py (a retried script could deliver a message twice); the layer
        reconnects and counts failures itself. `name` is set on every connection
        (CLIENT SETNAME), so that `CLIENT LIST` shows which layer holds it."""
        options = dict(self.options)
        if name is not None:
            options.setdefault("client_name", name)
        timeout = options.pop("socket_timeout", COMMAND_TIMEOUT)
        if blocking and timeout is not None:
            timeout = timeout + BLOCK_SECONDS
        options.setdefault("socket_connect_timeout", COMMAND_TIMEOUT)
        options.setdefault("socket_keepalive", True)
        options["socket_timeout"] = timeout
        options["retry"] = Retry(NoBackoff(), 0)
        options["decode_responses"] = False  # payloads are bytes
        if blocking:  # each parked plain-channel receive holds one connection
            options.setdefault("max_connections", PARKED_CONNECTIONS)
        if self.kind == "cluster":
            options.setdefault("max_connections", PARKED_CONNECTIONS)
            return RedisCluster.from_url(options.pop("address"), **options)
        return Redis(connection_pool=self._pool(options, blocking))

    def connect_sync(self, name: str | None = None) -> Any:
        """A redis-py client without an event loop, for the presence thread: the
        same address, timeouts and name as `connect`, no retries by redis-py."""
        options = dict(self.options)
        if name is not None:
            options.setdefault("client_name", name)
        options.setdefault("socket_timeout", COMMAND_TIMEOUT)
        options.setdefault("socket_connect_timeout", COMMAND_TIMEOUT)
        options.setdefault("socket_keepalive", True)
        options["retry"] = SyncRetry(NoBackoff(), 0)
        options["decode_responses"] = False
        if self.kind == "cluster":
            return SyncCluster.from_url(options.pop("address"), **options)
        if self.kind == "sentinel":
            manager = SyncSentinel(
                options.pop("sentinels"),
                sentinel_kwargs=options.pop("sentinel_kwargs", None),
            )
            return manager.master_for(options.pop("master_name"), **options)
        if self.kind == "url":
            return SyncRedis.from_url(options.pop("address"), **options)
        return SyncRedis(**options)

    def _pool(self, options: dict[str, Any], blocking: bool) -> ConnectionPool:
        """Commands wait for a free connection (redis-py's plain pool raises at its
        limit, 100 by default, and a burst of joins would lose memberships)."""
        if self.kind == "sentinel":
            sentinels = options.pop("sentinels")
            master = options.pop("master_name")
            sentinel_kwargs = options.pop("sentinel_kwargs", None)
            manager = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
            options.setdefault("max_connections", PARKED_CONNECTIONS)
            return SentinelConnectionPool(master, manager, **options)
        pool_class = ConnectionPool if blocking else BlockingConnectionPool
        if not blocking:
            options.setdefault("timeout", COMMAND_TIMEOUT)
        if self.kind == "url":
            return pool_class.from_url(options.pop("address"), **options)
        return pool_class(**options)


def parse_hosts(hosts: Sequence[HostSpec] | None) -> list[Host]:
    """Normalise `hosts` as channels_redis does, with errors that say what is wrong."""
    if not hosts:
        return [_url_host(DEFAULT_HOST, {})]
    if isinstance(hosts, str | bytes):
        raise ValueError(
            "channel layer setting hosts must be a list of hosts, even for one: "
            f"use [{hosts!r}]"
        )
    return [_parse_host(entry) for entry in hosts]


def _parse_host(entry: HostSpec) -> Host:
    if isinstance(entry, str):
        return _url_host(entry, {})
    if isinstance(entry, tuple | list):
        if len(entry) != 2:
            raise ValueError(f"a (host, port) entry in hosts needs 2 items: {entry!r}")
        host, port = entry
        return Host("params", {"host": host, "port": int(port)}, f"{host}:{port}")
    if isinstance(entry, Mapping):
        options = dict(entry)
        if "sentinels" in options:
            if "master_name" not in options:
                raise ValueError(f"a Sentinel host needs 'master_name': {entry!r}")
            return Host("sentinel", options, f"sentinel:{options['master_name']}")
        if "address" in options:
            return _url_host(options.pop("address"), options)
        if options.pop("cluster", False):
            raise ValueError(f"a cluster host needs an 'address' URL: {entry!r}")
        ident = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
        return Host("params", options, f"{ident}/{options.get('db', 0)}")
    raise ValueError(f"hosts entries are URLs, (host, port) or dicts, got {entry!r}")


def _url_host(address: str, options: dict[str, Any]) -> Host:
    if urlsplit(address).scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(
            f"a Redis URL starts with redis://, rediss:// or unix://: {address!r}"
        )
    kind = "cluster" if options.pop("cluster", False) else "url"
    return Host(kind, {"address": address, **options}, f"{kind}:{address}")


def place(tag: str, hosts: Sequence[Host]) -> int:
    """The index of the host that stores every key tagged `tag`.

    Rendezvous hashing: each (host identity, tag) pair gets a score and the highest
    wins, so adding a host moves only the tags it now wins (about 1/N of them), and
    every process that lists the same hosts agrees, whatever their order.
    """
    if len(hosts) == 1:
        return 0
    return max(range(len(hosts)), key=lambda i: _score(hosts[i].identity, tag))


def _score(identity: str, tag: str) -> bytes:
    return hashlib.blake2b(f"{identity}\0{tag}".encode(), digest_size=8).digest()


def check_settings(
    prefix: Any, serializer: Any, random_length: Any, presence: Any
) -> None:
    """Raise at startup, naming the setting, for values channels_redis would not
    take either (and for a prefix with braces, which would break hash tags)."""
    rules = {
        "prefix": (
            prefix,
            "a str without braces",
            isinstance(prefix, str) and not {"{", "}"} & set(prefix),
        ),
        "serializer_format": (
            serializer,
            "'msgpack' or 'json'",
            serializer in {"msgpack", "json"},
        ),
        "random_prefix_length": (
            random_length,
            "an int >= 0",
            _is_number(random_length, int) and random_length >= 0,
        ),
        "presence_timeout": (
            presence,
            "a positive number",
            _is_number(presence, int | float) and presence > 0,
        ),
    }
    for name, (value, rule, ok) in rules.items():
        if not ok:
            raise ValueError(
                f"channel layer setting {name} must be {rule}, got {value!r}"
            )


def _is_number(value: Any, kind: Any) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


class Seal:
    """`symmetric_encryption_keys`: payloads are sealed before they reach Redis and
    opened after, with channels_redis' key derivation (SHA-256 of each key), so the
    same settings encrypt the same way; the first key seals, all of them open."""

    def __init__(self, keys: Sequence[str | bytes] | None) -> None:
        self._fernet: Any = None
        if not keys:
            return
        if isinstance(keys, str | bytes):
            raise ValueError(
                "channel layer setting symmetric_encryption_keys must be a list of keys"
            )
        from cryptography.fernet import Fernet, MultiFernet

        fernets = []
        for key in keys:
            raw = key.encode() if isinstance(key, str) else key
            digest = hashlib.sha256(raw).digest()
            fernets.append(Fernet(base64.urlsafe_b64encode(digest)))
        self._fernet = MultiFernet(fernets)

    def seal(self, payload: bytes) -> bytes:
        return self._fernet.encrypt(payload) if self._fernet else payload

    def open(self, data: bytes) -> bytes | None:
        """The payload, or None (logged) when no key opens it."""
        if self._fernet is None:
            return data
        try:
            return self._fernet.decrypt(data)
        except Exception as exc:  # a key mismatch between processes: say so
            logger.error(
                "cannot decrypt a message (symmetric_encryption_keys?): %r", exc
            )
            return None


@dataclass(frozen=True)
class Rules:
    """The timing and capacity settings every part of the layer applies, in the
    units Redis scripts take (milliseconds)."""

    expiry_ms: int
    group_expiry_ms: int
    capacity: int
    capacity_of: Callable[[str], int]  # a channel's capacity, patterns applied
    per_channel: bool  # channel_capacity is set: members' capacities are stored

    @property
    def counts_ttl_ms(self) -> int:
        """How long a box's counts outlive its newest message."""
        return self.expiry_ms + 60_000
