"""Two demo servers on one Redis: chat and presence cross process boundaries, under
each ASGI server."""

import asyncio
import json
import subprocess
import sys

import pytest

from testing_support.asgi_server import ROOT, project_env
from tests.support.e2e_ws import command, next_message, open_ws
from tests.support.redis_servers import redis_server
from tests.support.servers import SERVERS, Browser, asgi_server, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.mark.parametrize("kind", SERVERS)
async def test_two_servers_share_a_room_and_its_member_list(tmp_path, kind):
    """Two server processes on one Redis: a chat message crosses between them and
    each page's member list (group_members + names) shows both people, then only
    the one still connected once the other disconnects."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        asgi_server(kind, db_path, AETHER_REDIS_URL=redis.url) as first,
        asgi_server(kind, db_path, AETHER_REDIS_URL=redis.url) as second,
    ):
        alice = await open_ws(first, Browser(first.url).login("alice"), "/ws/chat/x/")
        bob = await open_ws(second, Browser(second.url).login("bob"), "/ws/chat/x/")
        roster = await _presence_with(alice, 2)
        assert [m["name"] for m in roster["members"]] == ["alice", "bob"]
        await command(bob, "send", "room:x", "across processes")
        message = await _next_of_type(alice, "chat.message")
        assert (message.payload, message.sender) == ("across processes", "bob")
        await bob.close()
        roster = await _presence_with(alice, 1)
        assert [m["name"] for m in roster["members"]] == ["alice"]
        await alice.close()
        assert not first.tracebacks()
        assert not second.tracebacks()


async def _next_of_type(ws, kind):
    while True:
        message = await next_message(ws)
        if message.type == kind:
            return message


async def _presence_with(ws, connections):
    """The first presence update that counts `connections` members."""
    while True:
        roster = json.loads((await _next_of_type(ws, "presence")).payload)
        if roster["connections"] == connections:
            return roster


@pytest.mark.parametrize("kind", SERVERS)
async def test_manage_py_broadcast_reaches_a_running_servers_clients(tmp_path, kind):
    """`python manage.py broadcast` in its own process, on the Redis layer, reaches
    the WebSocket clients of a running server and prints honest counts."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        asgi_server(kind, db_path, AETHER_REDIS_URL=redis.url) as server,
    ):
        alice = await open_ws(server, Browser(server.url).login("alice"), "/ws/chat/x/")
        bob = await open_ws(server, Browser(server.url).login("bob"), "/ws/chat/x/")
        await _presence_with(alice, 2)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "manage.py", "broadcast", "room:x", "from ops"],
            cwd=ROOT,
            env={**project_env(db_path), "AETHER_REDIS_URL": redis.url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Broadcast to 'room:x': sent=2 failed=0"
        for ws in (alice, bob):
            assert await _next_text(ws, "from ops") == "from ops"
        await alice.close()
        await bob.close()
        assert not server.tracebacks()


async def _next_text(ws, wanted):
    """The first frame equal to `wanted` (presence updates may come first)."""
    async with asyncio.timeout(10):
        while (frame := await ws.recv()) != wanted:
            pass
    return frame
