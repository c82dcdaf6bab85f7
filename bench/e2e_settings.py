"""Settings for the end-to-end benchmark's daphne: the demo's, with the layer chosen
by BENCH_LAYER and limits that never get in a broadcaster's way. The Redis layers
("ours-redis", "stock-pubsub") read BENCH_REDIS_URL and BENCH_REDIS_PREFIX, so that
each sample has its own keys on the bench's private redis-server."""

import os

from project.config.settings import *  # noqa: F403  (the demo's settings, then overrides)

BACKENDS = {
    "ours": "aether_compat.layers.InMemoryChannelLayer",
    "stock": "channels.layers.InMemoryChannelLayer",
    "ours-redis": "aether_compat.layers.RedisChannelLayer",
    "stock-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
LAYER = os.environ["BENCH_LAYER"]
CHANNEL_LAYERS = {"default": {"BACKEND": BACKENDS[LAYER]}}
if LAYER.endswith(("-redis", "-pubsub")):
    CHANNEL_LAYERS["default"]["CONFIG"] = {
        "hosts": [os.environ["BENCH_REDIS_URL"]],
        "prefix": os.environ.get("BENCH_REDIS_PREFIX", "bench"),
    }
ASGI_APPLICATION = "bench.e2e_asgi.application"
DEBUG = False
AETHER_ALLOW_ANONYMOUS_ROOMS = True
AETHER_WEBSOCKET_LIMITS = {"commands_per_second": 1e9, "command_burst": 10**9}
