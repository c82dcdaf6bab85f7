"""The chat page's resume in Chromium (tests/test_pages_history.py) with the demo
on the Redis layer: the page's connection is cut by the TCP proxy, messages are
broadcast meanwhile, and they appear in order once it is back."""

import json

import pytest

from tests.support.redis_servers import redis_server
from tests.support.servers import daphne_server
from tests.test_pages import browser  # noqa: F401  (the shared Chromium fixture)
from tests.test_pages_history import (  # noqa: F401  (collected here, on Redis)
    LIMITS,
    page,
    proxied,
    test_missed_messages_appear_in_order_and_the_page_says_recovered,
    test_more_missed_than_the_room_keeps_reloads,
)

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture(scope="module")
def server():
    """The demo as shipped (rooms keep 100 messages) on a private Redis."""
    with (
        redis_server() as redis,
        daphne_server(
            AETHER_REDIS_URL=redis.url, AETHER_WEBSOCKET_LIMITS=json.dumps(LIMITS)
        ) as running,
    ):
        yield running
