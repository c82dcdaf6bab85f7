"""Resume end to end on Redis: H2's history scenarios (tests/test_e2e_history.py)
behind daphne on one Redis server and on a three-node Redis Cluster, and a client
whose server is killed (`kill -9`) resuming on another server that shares Redis."""

import contextlib
import json
import os
import signal
from collections.abc import Iterator

import pytest

from tests.support.redis_servers import redis_cluster, redis_server
from tests.support.servers import asgi_server, prepare_database
from tests.test_e2e_history import (  # noqa: F401  (collected here, on Redis)
    GROUP_OPTIONS,
    LIMITS,
    Client,
    broadcast,
    test_a_group_joined_by_url_resumes_from_the_query_string,
    test_a_late_joiner_of_a_cache_group_gets_the_last_message,
    test_history_size_100_recovers_100_missed_not_101,
    test_resumes_under_1000_messages_a_second_lose_and_repeat_nothing,
    text_of,
)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def layer_env(hosts: list) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings_history_redis",
        "AETHER_TEST_REDIS_HOSTS": json.dumps(hosts),
        "AETHER_GROUP_OPTIONS": json.dumps(GROUP_OPTIONS),
        "AETHER_WEBSOCKET_LIMITS": json.dumps(LIMITS),
    }


@contextlib.contextmanager
def one_redis() -> Iterator[dict[str, str]]:
    with redis_server() as redis:
        yield layer_env([redis.url])


@contextlib.contextmanager
def three_node_cluster() -> Iterator[dict[str, str]]:
    with redis_cluster(3) as nodes:
        yield layer_env([{"address": nodes[0].url, "cluster": True}])


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(one_redis, id="redis"),
        pytest.param(three_node_cluster, id="cluster"),
    ],
)
def server(request):
    with request.param() as env, asgi_server("daphne", **env) as running:
        yield running
        assert not running.tracebacks(), running.log


@pytest.mark.parametrize(
    "redis", [one_redis, three_node_cluster], ids=["redis", "cluster"]
)
async def test_a_client_of_a_killed_server_resumes_on_another(tmp_path, redis):
    """Two daphne servers share Redis; server A is killed (-9) under a client in
    room:x; 50 messages are broadcast from B meanwhile; the client reconnects to
    B and resumes: exactly the 50, in order, no duplicate, recovered true."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis() as env,
        asgi_server("daphne", db_path, **env) as a,
        asgi_server("daphne", db_path, **env) as b,
    ):
        sender = await Client.open(b)
        client = await Client.open(a)
        await client.join("room:x")
        await broadcast(sender, "room:x", ["before"])
        seen = await client.next()
        assert text_of(seen) == "before"
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait(10)
        await client.close()
        texts = [f"m{n}" for n in range(50)]
        await broadcast(sender, "room:x", texts)
        back = await Client.open(b)
        since = {"epoch": seen["epoch"], "offset": seen["offset"]}
        joined = await back.join("room:x", since=since)
        assert joined["recovered"] is True
        assert joined["offset"] == seen["offset"] + 50
        await broadcast(sender, "room:x", ["after"])
        got = []
        while not got or text_of(got[-1]) != "after":
            got.append(await back.next())
        assert [text_of(frame) for frame in got] == [*texts, "after"]
        offsets = [frame["offset"] for frame in got]
        assert offsets == list(range(seen["offset"] + 1, seen["offset"] + 52))
        await back.close()
        await sender.close()
        assert not b.tracebacks(), b.log
