"""The shared history contract (tests/history_contract.py) on the Redis layer, and
the facade's `history()` over Redis."""

from typing import Any

import pytest

from aether_compat import Channels
from tests.history_contract import *  # noqa: F403  (the contract's tests run here)
from tests.history_contract import broadcast

pytestmark = pytest.mark.redis


@pytest.fixture
async def make_history_layer(make_layer: Any) -> Any:
    return lambda group_options: make_layer(group_options=group_options)


@pytest.fixture
def backend() -> str:
    return "redis"


async def test_the_facade_reads_redis_history(make_history_layer):
    layer = make_history_layer({"room:*": {"history_size": 5, "history_ttl": 300}})
    Channels.configure(layer)
    await broadcast(layer, "room:f", 3)
    history = await Channels.group("room:f").history(limit=2)
    assert [m["n"] for m in history.messages] == [1, 2]
    assert history.offset == 3
