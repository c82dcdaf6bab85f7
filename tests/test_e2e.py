"""End to end: the demo project in a real server process (daphne, uvicorn and
hypercorn; in-memory layer, and Redis through a private redis-server), real
WebSocket clients, real logins."""

import asyncio
import contextlib
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aether_compat.messages import now_ms
from tests.support.bad_frames import BAD_FRAMES
from tests.support.e2e_ws import (
    WAIT,
    close_code,
    command,
    joined_group,
    next_message,
    open_ws,
    reply,
)
from tests.support.redis_servers import redis_server
from tests.support.reliability import rss_bytes
from tests.support.servers import SERVER_KINDS, Browser, asgi_server

pytestmark = pytest.mark.e2e

# uvicorn logs a client's invalid UTF-8 at ERROR with a traceback of its own code
# (and closes with 1007); that is the server's habit, not an error of the app.
CLIENT_ERROR_LOGGED_BY_UVICORN = "Invalid UTF-8 sequence received from client"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(
            (kind, layer),
            id=f"{kind}-{layer}",
            marks=[pytest.mark.redis] if layer == "redis" else [],
        )
        for kind in SERVER_KINDS
        for layer in ("memory", "redis")
    ],
)
def server(request):
    kind, layer = request.param
    if layer == "memory":
        with asgi_server(kind) as running:
            yield running
        return
    with (
        redis_server() as redis,
        asgi_server(kind, AETHER_REDIS_URL=redis.url) as running,
    ):
        yield running


# The servers on Redis only, for a test that needs a layer outside the server.
REDIS_SERVERS = [
    pytest.param((kind, "redis"), id=f"{kind}-redis", marks=[pytest.mark.redis])
    for kind in SERVER_KINDS
]


@pytest.fixture(autouse=True)
def no_new_errors(server):
    """Whatever a test sends, the server logs no error line and no traceback
    (the server's stop checks the whole log too; this names the test)."""
    seen = len(server.errors())
    yield
    assert not server.errors()[seen:], server.log


@pytest.fixture(scope="module")
def logins(server):
    """A logged-in HTTP session per demo user."""
    return {name: Browser(server.url).login(name) for name in ("alice", "bob", "staff")}


async def member_counts(dashboard):
    """Member counts per group from a dashboard snapshot counted from now on."""
    since = now_ms()
    async with asyncio.timeout(WAIT):
        while True:
            message = await next_message(dashboard)
            if message.type != "dashboard.stats":
                continue
            data = json.loads(message.payload)
            if data["at"] > since:
                return {row["group"]: row["members"] for row in data["groups"]}


async def test_two_users_chat_with_sender_and_counts(server, logins):
    alice = await open_ws(server, logins["alice"])
    bob = await open_ws(server, logins["bob"])
    for ws in (alice, bob):
        await command(ws, "join", "room:e2e")
        assert await joined_group(ws) == "room:e2e"
    await command(alice, "send", "room:e2e", "hi bob")
    for ws in (bob, alice):
        message = await next_message(ws)
        assert (message.type, message.payload) == ("chat.message", "hi bob")
        assert (message.sender, message.target) == ("alice", "room:e2e")
    assert await reply(alice) == (
        "aether.sent",
        {"group": "room:e2e", "sent_count": 2, "failed_count": 0},
    )
    await alice.close()
    await bob.close()


async def test_cross_user_join_is_refused_and_absent(server, logins):
    bob_pk = logins["bob"].pk()
    dashboard = await open_ws(server, logins["staff"], "/ws/dashboard/")
    bob = await open_ws(server, logins["bob"])  # joins user:<bob> on connect
    alice = await open_ws(server, logins["alice"])
    await command(alice, "join", f"user:{bob_pk}")
    kind, payload = await reply(alice)
    assert (kind, payload["code"]) == ("aether.error", "not_allowed")
    await command(alice, "send", f"user:{bob_pk}", "psst")
    assert (await reply(alice))[1]["code"] == "not_allowed"
    assert (await member_counts(dashboard))[f"user:{bob_pk}"] == 1
    await command(alice, "join", "room:still-usable")
    assert (await reply(alice))[0] == "aether.joined"
    for ws in (alice, bob, dashboard):
        await ws.close()


WIRE_FRAMES = [case for case in BAD_FRAMES if case.id != "raw-lone-surrogate"]


@pytest.mark.parametrize(("text", "data", "code"), WIRE_FRAMES)
async def test_bad_frame_gets_its_error_and_the_socket_stays_usable(
    server, text, data, code
):
    ws = await open_ws(server)
    await ws.send(data if text is None else text)
    kind, payload = await reply(ws)
    assert (kind, payload["code"]) == ("aether.error", code)
    await command(ws, "join", "room:after-bad-frame")
    assert await joined_group(ws) == "room:after-bad-frame"
    await ws.close()


async def test_invalid_utf8_in_a_text_frame_is_closed_by_rfc_and_harms_no_one(server):
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the connection. daphne's
    WebSocket library (autobahn) does that before the application sees the frame,
    by dropping the TCP connection (the client sees 1006, no close frame). The same
    bytes in a binary frame get an error frame (the table above)."""
    if server.kind == "uvicorn":
        server.allow(CLIENT_ERROR_LOGGED_BY_UVICORN)
    bystander = await open_ws(server)
    ws = await open_ws(server)
    await ws.send("\ud800".encode("utf-8", "surrogatepass"), text=True)
    assert await close_code(ws) in (None, 1007)
    await command(bystander, "join", "room:bystander")
    assert (await reply(bystander))[0] == "aether.joined"
    await bystander.close()


@pytest.mark.parametrize(
    ("size", "codes"),
    [
        pytest.param(600 * 1024, (4009,), id="600-KiB-closed-by-the-consumer"),
        pytest.param(10 * 1024 * 1024, (None, 1009), id="10-MiB-beyond-daphne-cap"),
    ],
)
async def test_a_huge_frame_closes_that_socket_only(server, size, codes):
    """Beyond `close_frame_bytes` (512 KiB) the consumer closes with 4009; beyond
    daphne's 1 MiB cap daphne drops the connection without a close frame (uvicorn's
    and hypercorn's caps are 16 MiB: the consumer sees the frame and closes it)."""
    if server.kind != "daphne":
        codes = (4009,)
    bystander = await open_ws(server)
    ws = await websockets.connect(
        server.ws_url + "/ws/realtime/",
        additional_headers={"Origin": server.url},
        max_size=None,
    )
    with contextlib.suppress(ConnectionClosed):
        await ws.send("x" * size)
    assert await close_code(ws) in codes
    await command(bystander, "join", "room:bystander")
    assert (await reply(bystander))[0] == "aether.joined"
    await bystander.close()


async def test_a_command_flood_is_closed_with_4008(server):
    bystander = await open_ws(server)
    ws = await open_ws(server)
    for _ in range(200):
        try:
            await command(ws, "join", "room:flood")
        except ConnectionClosed:
            break
    assert await close_code(ws) == 4008
    await command(bystander, "join", "room:bystander")
    assert (await reply(bystander))[0] == "aether.joined"
    await bystander.close()


async def test_another_origin_cannot_open_the_socket(server, logins):
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server, logins["alice"], Origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_a_logged_out_session_loses_access_on_its_next_connection(server):
    browser = Browser(server.url).login("bob")
    pk = browser.pk()
    old_headers = browser.ws_headers()
    ws = await open_ws(server, browser)
    await command(ws, "join", f"user:{pk}")
    assert (await reply(ws))[0] == "aether.joined"
    await ws.close()
    browser.logout()
    again = await websockets.connect(
        server.ws_url + "/ws/realtime/", additional_headers=old_headers
    )
    await command(again, "join", f"user:{pk}")
    assert (await reply(again))[1]["code"] == "not_allowed"
    await again.close()


# A client that stops reading (needs a layer the test process can broadcast into)


@pytest.mark.parametrize("server", REDIS_SERVERS, indirect=True)
async def test_a_client_that_stops_reading_is_bounded_and_closed(server, logins):
    """A client that stops reading: once its unread bytes inside the server pass the
    outbound limit (1 MiB) the server refuses further deliveries to it, closes it
    after the grace period (4013) and takes it out of its groups; the server's
    memory stays bounded, and a reading client in the same room gets everything,
    in order. (Broadcasts come from this process through Redis.)"""
    from aether_compat.facade import ChannelsFacade
    from aether_compat.layers import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[server.env["AETHER_REDIS_URL"]])
    facade = ChannelsFacade()
    facade.configure(layer)
    reader = await open_ws(server)
    stalled = await websockets.connect(
        server.ws_url + "/ws/realtime/",
        additional_headers={"Origin": server.url},
        max_queue=1,  # stops reading from the socket once one frame waits
        compression=None,  # uvicorn would deflate the payload to almost nothing
    )
    for ws in (reader, stalled):
        await command(ws, "join", "room:slow")
        assert (await reply(ws))[0] == "aether.joined"
    rss_before = rss_bytes(server.process.pid)
    payload = "x" * 32 * 1024
    sent = 0
    async with asyncio.timeout(60):
        while len(await facade.group_members("room:slow")) == 2:
            await facade.group("room:slow").broadcast(f"{sent} {payload}")
            assert (await reader.recv()).split(" ", 1)[0] == str(sent)
            sent += 1
    growth = rss_bytes(server.process.pid) - rss_before
    assert len(await facade.group_members("room:slow")) == 1
    assert "its client is not reading" in server.log
    # Measured: 700 to 3,000 broadcasts (22 to 100 MB) go by before the close, on
    # every server; RSS grows 2 to 5 MiB.
    assert growth < 12 * 1024 * 1024 < sent * len(payload), (growth, sent)
    assert await close_code(stalled) in (4013, None)
    await command(reader, "send", "room:slow", "still here")
    assert (await next_message(reader)).payload == "still here"
    await reader.close()
    await layer.close()
