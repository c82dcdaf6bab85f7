"""Settings for the density benchmark's daphne: the demo's, with the layer chosen by
BENCH_LAYER ("ours" or "stock") and limits that never get in a broadcaster's way."""

import os

from project.config.settings import *  # noqa: F403  (the demo's settings, then overrides)

BACKENDS = {
    "ours": "aether_compat.layers.InMemoryChannelLayer",
    "stock": "channels.layers.InMemoryChannelLayer",
}
CHANNEL_LAYERS = {"default": {"BACKEND": BACKENDS[os.environ["BENCH_LAYER"]]}}
ASGI_APPLICATION = "bench.density_asgi.application"
DEBUG = False
AETHER_ALLOW_ANONYMOUS_ROOMS = True
AETHER_WEBSOCKET_LIMITS = {"commands_per_second": 1e9, "command_burst": 10**9}
