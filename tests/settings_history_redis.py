"""The demo settings on a Redis layer whose `hosts` come from the environment as
JSON (a Redis Cluster too), for the end-to-end history tests' servers."""

import json
import os

from project.config.settings import *  # noqa: F403  (the demo settings, one override)
from project.config.settings import GROUP_OPTIONS

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "aether_compat.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": json.loads(os.environ["AETHER_TEST_REDIS_HOSTS"]),
            "group_options": GROUP_OPTIONS,
        },
    }
}
