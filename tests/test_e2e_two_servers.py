"""Two demo servers on one Redis: chat and presence cross process boundaries, under
each ASGI server."""

import asyncio
import json
import subprocess
import sys

import pytest

from aether_compat import ChannelMessage
from testing_support.asgi_server import ROOT, project_env
from tests.support.e2e_ws import open_ws
from tests.support.redis_servers import redis_server
from tests.support.servers import SERVERS, Browser, asgi_server, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PRESENCE_GRACE = 5.0  # the demo's: a leave is announced this long after it


@pytest.mark.parametrize("kind", SERVERS)
async def test_two_servers_share_a_room_and_its_member_list(tmp_path, kind):
    """Two server processes on one Redis: a chat message crosses between them and
    each page's member list (the room's presence state, then diffs) shows both
    people, then only the one still connected once the other's leave is announced
    (after the presence grace period)."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        asgi_server(kind, db_path, AETHER_REDIS_URL=redis.url) as first,
        asgi_server(kind, db_path, AETHER_REDIS_URL=redis.url) as second,
    ):
        alice = await _chat_page(first, "alice")
        bob = await _chat_page(second, "bob")
        names = await _members_until(alice, {"alice", "bob"}, {})
        frame = {"action": "send", "group": "room:x", "message": "across processes"}
        await bob.send(json.dumps(frame))
        message = await _next_chat(alice)
        assert (message.payload, message.sender) == ("across processes", "bob")
        await bob.close()
        await _members_until(alice, {"alice"}, names)
        await alice.close()
        assert not first.tracebacks()
        assert not second.tracebacks()


async def _chat_page(server, username):
    """A chat socket of room x as the page opens it (aether.v1), signed in."""
    browser = Browser(server.url).login(username)
    return await open_ws(server, browser, "/ws/chat/x/", protocol="aether.v1")


async def _members_until(ws, wanted, members):
    """Read presence frames of room:x into `members` (key -> metas) until the
    names in it are `wanted`; other frames are skipped."""
    async with asyncio.timeout(PRESENCE_GRACE + 5):
        while {metas[0]["name"] for metas in members.values()} != wanted:
            frame = json.loads(await ws.recv())
            if frame.get("group") != "room:x":
                continue
            if frame["type"] == "aether.presence_state":
                members = dict(frame["presence"])
            elif frame["type"] == "aether.presence_diff":
                for key in frame["leaves"]:
                    members.pop(key, None)
                members.update(frame["joins"])
    return members


async def _next_chat(ws):
    """The next group message's ChannelMessage (presence frames are skipped)."""
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "aether.message" and frame["group"] == "room:x":
                return ChannelMessage.from_json(frame["data"])


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
    """The first frame equal to `wanted` (other frames may come first)."""
    async with asyncio.timeout(10):
        while (frame := await ws.recv()) != wanted:
            pass
    return frame
