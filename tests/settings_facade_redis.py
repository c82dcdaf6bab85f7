"""The demo settings with the Redis layer under one test's own key prefix, for the
management commands the tests run as subprocesses."""

import os

from project.config.settings import *  # noqa: F403  (the demo settings, one override)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "aether_compat.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ["AETHER_TEST_REDIS_URL"]],
            "prefix": os.environ["AETHER_TEST_LAYER_PREFIX"],
        },
    }
}
