"""Fixtures shared by the whole suite: layers of every backend, built and torn down."""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aether_compat import Channels
from tests.support.layers import BACKENDS, REDIS_URL, build_layer
from tests.support.missing_binaries import pytest_runtest_makereport  # noqa: F401


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
    return request.param


@pytest.fixture
async def make_layer(backend: str) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `make_layer(**config)` builds a layer of the current backend; every
    layer it made is flushed and closed at the end of the test."""
    made: list[Any] = []

    def factory(**config: Any) -> Any:
        layer = build_layer(backend, **config)
        made.append(layer)
        return layer

    yield factory
    for layer in made:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def layer(make_layer: Callable[..., Any]) -> Any:
    return make_layer()


@pytest.fixture(autouse=True)
def restore_facade_layer() -> Iterator[None]:
    """Tests that configure the facade leave it on Django's default layer again."""
    yield
    Channels.configure(None)


@pytest.fixture
def facade_layer(layer: Any) -> Any:
    """The backend's layer, configured as the facade's."""
    Channels.configure(layer)
    return layer


@pytest.fixture
async def make_redis() -> AsyncIterator[Callable[..., Any]]:
    """Factory of Redis layers; by default all share one fresh prefix (so they act as
    processes of one deployment). Flushed and closed at the end."""
    from aether_compat.layers import RedisChannelLayer

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    made: list[Any] = []

    def factory(**config: Any) -> Any:
        config.setdefault("hosts", [REDIS_URL])
        config.setdefault("prefix", prefix)
        layer = RedisChannelLayer(**config)
        made.append(layer)
        return layer

    yield factory
    for layer in made:  # stop them all first: a live instance re-announces itself
        await layer.close()
    for layer in made:
        await layer.flush()
        await layer.close()
