"""Two demo servers on one Redis: chat and presence cross process boundaries."""

import json

import pytest

from tests.redis_servers import redis_server
from tests.servers import Browser, daphne_server, prepare_database
from tests.test_e2e import command, next_message, open_ws

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


async def test_two_servers_share_a_room_and_its_member_list(tmp_path):
    """Two daphne processes on one Redis: a chat message crosses between them and
    each page's member list (group_members + names) shows both people."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        daphne_server(db_path, AETHER_REDIS_URL=redis.url) as first,
        daphne_server(db_path, AETHER_REDIS_URL=redis.url) as second,
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
