"""Layers of every backend for the tests: the shared Redis the suite uses, and a
fresh layer of a backend with a key prefix no other test uses."""

import os
import uuid
from typing import Any

from aether_compat.layers import InMemoryChannelLayer

REDIS_URL = os.environ.get("AETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BACKENDS = ["memory", "redis"]


def build_layer(backend: str, **config: Any) -> Any:
    """A fresh layer of `backend`; Redis layers get a prefix no other test uses."""
    if backend == "memory":
        return InMemoryChannelLayer(**config)
    if backend == "redis":
        from aether_compat.layers import RedisChannelLayer

        config.setdefault("hosts", [REDIS_URL])
        config.setdefault("prefix", f"test-{uuid.uuid4().hex[:12]}")
        return RedisChannelLayer(**config)
    raise ValueError(f"unknown backend {backend!r}")
