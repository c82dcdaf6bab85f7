"""The end-to-end benchmark's two setups, side by side in one place:

  in-memory   one daphne per sample, the in-memory layers (ours, channels')
  redis       two daphne processes per sample on one private redis-server, the
              clients split between them and the broadcaster on the first, so half
              of every broadcast crosses Redis: our RedisChannelLayer against
              channels_redis' RedisPubSubChannelLayer

Each sample of the Redis setup gets its own key prefix, on a redis-server the
benchmark starts for the run and stops by pid."""

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.ratios import Target
from testing_support.redis_process import RedisProcess


@dataclass(frozen=True)
class Mode:
    """Who runs (name -> BENCH_LAYER, WebSocket path), on how many servers, who is
    ours and who the peer, and the targets at C >= TARGET_CLIENTS."""

    name: str
    contestants: dict[str, tuple[str, str]]
    servers: int
    ours: str
    peer: str
    decomposition: str  # the stock consumer on our layer: the layer's share
    deliveries_target: Target
    p99_target: Target
    latency_clients: int = 20
    spread_samples: bool = False  # sample every (about C / latency_clients)th client

    def sampled(self, clients: int) -> set[int]:
        """Which clients record latency: the first ones, or spread over the room
        so that no fan-out order (first joined, first served) favours a side."""
        if not self.spread_samples:
            return set(range(self.latency_clients))
        # An odd stride: clients alternate between two servers, so must samples.
        stride = max(1, clients // self.latency_clients)
        stride -= 1 if stride % 2 == 0 else 0
        return set(range(0, clients, stride)[: self.latency_clients])


TARGET_CLIENTS = 500

IN_MEMORY = Mode(
    "e2e",
    {
        "ours": ("ours", "/ws/ours/"),
        "stock": ("stock", "/ws/stock/"),
        "stock-on-ours": ("ours", "/ws/stock/"),
    },
    servers=1,
    ours="ours",
    peer="stock",
    decomposition="stock-on-ours",
    deliveries_target=Target(">=", 1.3),
    p99_target=Target("<=", 0.8),
)

REDIS = Mode(
    "e2e-redis",
    {
        "ours-redis": ("ours-redis", "/ws/ours/"),
        "stock-pubsub": ("stock-pubsub", "/ws/stock/"),
        "stock-on-ours-redis": ("ours-redis", "/ws/stock/"),
    },
    servers=2,
    ours="ours-redis",
    peer="stock-pubsub",
    decomposition="stock-on-ours-redis",
    deliveries_target=Target(">=", 1.5),
    p99_target=Target("<=", 1.0),
    latency_clients=50,
    spread_samples=True,
)

SampleEnv = Callable[[str], dict[str, str]]


@contextlib.contextmanager
def backend(mode: Mode) -> Iterator[SampleEnv]:
    """For the run: what a sample's servers get in their environment besides
    BENCH_LAYER. The Redis setup starts its redis-server here and stops it after."""
    if mode is not REDIS:
        yield lambda name: {}
        return
    redis = RedisProcess().start()
    try:
        yield lambda name: {
            "BENCH_REDIS_URL": redis.url,
            "BENCH_REDIS_PREFIX": f"e2e-{name}-{secrets.token_hex(4)}",
        }
    finally:
        redis.stop()
