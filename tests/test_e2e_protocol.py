"""aether.v1 end to end under each ASGI server (Redis layer on a private
redis-server), real WebSocket clients. 1,000 pipelined commands get their replies
in order, each with its ref; every frame validates against the shipped schema;
a half-open client (frozen with SIGSTOP) leaves its group within the heartbeat
timeout."""

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import websockets

from aether_compat.facade import ChannelsFacade
from aether_compat.layers import RedisChannelLayer
from tests.support.redis_servers import redis_server
from tests.support.schema import assert_server_frames
from tests.support.servers import SERVERS, asgi_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

HEARTBEAT_INTERVAL = 1
HEARTBEAT_TIMEOUT = 3
LIMITS = {
    "commands_per_second": 100_000,
    "command_burst": 100_000,
    "heartbeat_interval": HEARTBEAT_INTERVAL,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
}
CLIENT = Path(__file__).resolve().parent / "support" / "v1_client.py"
WAIT = 10


@pytest.fixture(scope="module", params=SERVERS)
def server(request):
    with (
        redis_server() as redis,
        asgi_server(
            request.param,
            AETHER_REDIS_URL=redis.url,
            AETHER_WEBSOCKET_LIMITS=json.dumps(LIMITS),
        ) as running,
    ):
        yield running


@pytest.fixture
async def facade(server):
    """The facade over the server's Redis, to read `group_members` from here."""
    layer = RedisChannelLayer(hosts=[server.env["AETHER_REDIS_URL"]])
    channels = ChannelsFacade()
    channels.configure(layer)
    yield channels
    await layer.close()


async def open_v1(server, path="/ws/chat/pipe/"):
    ws = await websockets.connect(
        server.ws_url + path,
        subprotocols=["aether.v1"],
        additional_headers={"Origin": server.url},
        open_timeout=WAIT,
        max_queue=None,
    )
    assert ws.subprotocol == "aether.v1"
    return ws


def pipelined_commands(count):
    """Joins, leaves, sends (echo off), pings and a few refused commands, each
    with its ref: integers and strings alternately."""
    commands = []
    for i in range(count):
        ref = i if i % 2 else f"r{i}"
        kind = i % 5
        if i % 100 == 99:
            command = {"action": "join", "group": "bad group"}
        elif kind == 0:
            command = {"action": "join", "group": f"room:p{i % 7}"}
        elif kind == 1:
            command = {"action": "leave", "group": f"room:p{i % 7}"}
        elif kind == 2:
            command = {"action": "send", "group": "room:pipe", "message": str(i)}
            command["echo"] = False
        else:
            command = {"action": "ping"}
        commands.append({**command, "ref": ref})
    return commands


async def test_1000_pipelined_commands_get_their_replies_in_order(server):
    ws = await open_v1(server)
    commands = pipelined_commands(1000)
    started = time.monotonic()
    for command in commands:
        await ws.send(json.dumps(command))
    frames, replies = [], []
    async with asyncio.timeout(60):
        while len(replies) < len(commands):
            frames.append(await ws.recv())
            frame = json.loads(frames[-1])
            if frame["type"] in ("aether.message", "aether.ping"):
                continue
            if frame["type"].startswith("aether.presence_"):
                continue  # events of the rooms joined (presence_events)
            if frame["type"] == "aether.joined" and frame["ref"] is None:
                continue  # the position of a group joined on connect (history)
            replies.append(frame)
    elapsed = time.monotonic() - started
    assert [reply["ref"] for reply in replies] == [c["ref"] for c in commands]
    errors = [reply for reply in replies if reply["type"] == "aether.error"]
    assert len(errors) == 10
    assert all(error["code"] == "invalid_group" for error in errors)
    assert_server_frames(frames)
    print(f"1,000 pipelined commands answered in {elapsed:.2f} s")
    await ws.close()


async def test_every_frame_a_real_server_sends_validates(server):
    """A welcome push (group null), a group message from another client, every
    reply, and a heartbeat ping."""
    alice = await open_v1(server, "/ws/chat/schema/")
    bob = await open_v1(server, "/ws/chat/schema/")
    await bob.send(
        json.dumps({"action": "send", "group": "room:schema", "message": "hi"})
    )
    for command in (
        {"action": "ping", "ref": 1},
        {"action": "join", "group": "room:x", "ref": "j"},
        {"action": "leave", "group": "room:x"},
        {"action": "join", "group": "dashboard:staff"},
        "not json",
    ):
        await alice.send(command if isinstance(command, str) else json.dumps(command))
    frames = []
    async with asyncio.timeout(HEARTBEAT_INTERVAL + WAIT):
        while "aether.ping" not in {json.loads(f)["type"] for f in frames}:
            frames.append(await alice.recv())
    kinds = assert_server_frames(frames)
    presence = {"aether.presence_state", "aether.presence_diff"}  # rooms have them
    assert "aether.presence_state" in kinds
    assert kinds - presence == {
        "aether.message",
        "aether.pong",
        "aether.joined",
        "aether.left",
        "aether.error",
        "aether.ping",
    }
    group_messages = [json.loads(f) for f in frames if '"group":"room:schema"' in f]
    assert any(m["type"] == "aether.message" for m in group_messages)
    await alice.close()
    await bob.close()


async def until_empty(facade, group, within):
    """Seconds until `group` has no members (polling Redis, with a deadline)."""
    started = time.monotonic()
    while await facade.group_members(group):
        if time.monotonic() - started > within:
            raise AssertionError(f"{group} still has members after {within} s")
        await asyncio.sleep(0.05)  # polling a state, with a deadline
    return time.monotonic() - started


async def test_a_half_open_client_leaves_its_group_within_the_timeout(server, facade):
    group = f"room:half-{uuid.uuid4().hex[:8]}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        server.ws_url + "/ws/realtime/",
        server.url,
        group,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(WAIT):
            assert (await child.stdout.readline()).strip() == b"joined"
        assert len(await facade.group_members(group)) == 1
        # Answering pings keeps it a member for longer than the timeout.
        pongs = HEARTBEAT_TIMEOUT // HEARTBEAT_INTERVAL + 1
        async with asyncio.timeout(pongs * HEARTBEAT_INTERVAL + WAIT):
            for _ in range(pongs):
                assert (await child.stdout.readline()).strip() == b"pong"
        assert len(await facade.group_members(group)) == 1
        os.kill(child.pid, signal.SIGSTOP)
        gone_after = await until_empty(facade, group, HEARTBEAT_TIMEOUT + 2)
        print(f"a frozen client left {group} {gone_after:.2f} s after the freeze")
    finally:
        os.kill(child.pid, signal.SIGCONT)
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
