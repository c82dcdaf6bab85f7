"""Rights follow the user: a logout closes that session's sockets on every server,
`Channels.disconnect_*` reach them, and a socket whose user was deactivated,
demoted (even by a bulk update that sends no signal) or changed password is closed
within `rights_check_seconds`."""

import asyncio
import json
import subprocess
import sys

import pytest
import websockets
from channels.testing import WebsocketCommunicator

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from testing_support.asgi_server import ROOT, project_env
from tests.support.facade import as_default_layer
from tests.support.redis_servers import redis_server
from tests.support.servers import Browser, asgi_server, prepare_database

CLOSE_REVOKED = 4003


class FakeUser:
    pk = 424242
    is_authenticated = True
    is_active = True

    def get_username(self) -> str:
        return "fake"


class PlainConsumer(AetherConsumer):
    groups = ["room:a"]


async def test_disconnect_user_closes_its_sockets_after_they_left(make_layer):
    layer = make_layer()
    with as_default_layer(layer):
        client = WebsocketCommunicator(PlainConsumer.as_asgi(), "/ws/")
        client.scope["user"] = FakeUser()
        assert (await client.connect())[0]
        assert len(await Channels.group_members("room:a")) == 1
        result = await Channels.disconnect_user(FakeUser.pk, reason="test")
        assert (result.sent_count, result.failed_count) == (1, 0)
        closed = await client.receive_output(5)
        assert closed == {"type": "websocket.close", "code": CLOSE_REVOKED}
        assert await Channels.group_members("room:a") == set()
        await client.wait(5)


async def test_clients_cannot_join_or_send_to_control_groups(make_layer):
    layer = make_layer()
    with (
        as_default_layer(layer),
        pytest.MonkeyPatch.context() as patch,
    ):
        # Even a policy that allows everything keeps control groups closed.
        patch.setattr(PlainConsumer, "get_policy", lambda self: _AllowAll())
        client = WebsocketCommunicator(PlainConsumer.as_asgi(), "/ws/")
        client.scope["user"] = FakeUser()
        assert (await client.connect())[0]
        for action in ("join", "send"):
            frame = {"action": action, "group": "aether.user.1", "message": "x"}
            await client.send_json_to(frame)
            reply = json.loads(json.loads(await client.receive_from(5))["payload"])
            assert reply["code"] == "not_allowed"
        await client.disconnect()


class _AllowAll:
    def may_join(self, user, group):
        return True

    def may_send(self, user, group):
        return True


# End to end: real servers on one Redis


def shell(db_path, code: str) -> None:
    """Change the demo's database from outside the servers, as an admin would."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=project_env(db_path),
        check=True,
        capture_output=True,
        timeout=120,
    )


async def open_socket(server, browser, path="/ws/realtime/"):
    """A socket as a page of `server` would open it, with `browser`'s session."""
    headers = {**browser.ws_headers(), "Origin": server.url}
    return await websockets.connect(
        server.ws_url + path, additional_headers=headers, open_timeout=10
    )


async def closed_with(ws, within: float) -> int | None:
    async with asyncio.timeout(within):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.e2e
@pytest.mark.redis
async def test_a_logout_closes_that_sessions_sockets_on_every_server(tmp_path):
    db_path = tmp_path / "demo.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        asgi_server("daphne", db_path, AETHER_REDIS_URL=redis.url) as first,
        asgi_server("uvicorn", db_path, AETHER_REDIS_URL=redis.url) as second,
    ):
        leaving = Browser(first.url).login("bob")
        staying = Browser(first.url).login("bob")  # another session of the user
        on_first = await open_socket(first, leaving)
        on_second = await open_socket(second, leaving)
        other = await open_socket(first, staying)
        leaving.logout()
        assert await closed_with(on_first, 5) == CLOSE_REVOKED
        assert await closed_with(on_second, 5) == CLOSE_REVOKED
        await other.send(json.dumps({"action": "ping", "ref": 1}))
        assert "aether.pong" in await asyncio.wait_for(other.recv(), 5)
        await other.close()
        assert not first.tracebacks(), first.log
        assert not second.tracebacks(), second.log


@pytest.mark.e2e
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            "User.objects.filter(username='staff').update(is_staff=False)",
            id="demoted-by-bulk-update",
        ),
        pytest.param(
            "User.objects.filter(username='staff').update(is_active=False)",
            id="deactivated-by-bulk-update",
        ),
        pytest.param(
            "u = User.objects.get(username='staff'); u.set_password('n3w-Pa55-w0rd!');"
            " u.save()",
            id="password-changed",
        ),
    ],
)
async def test_a_socket_loses_its_rights_within_the_check_period(tmp_path, change):
    db_path = tmp_path / "demo.sqlite3"
    prepare_database(db_path)
    limits = json.dumps({"rights_check_seconds": 1})
    with asgi_server("daphne", db_path, AETHER_WEBSOCKET_LIMITS=limits) as server:
        staff = Browser(server.url).login("staff")
        dashboard = await open_socket(server, staff, "/ws/dashboard/")
        await asyncio.wait_for(dashboard.recv(), 5)  # it is live
        shell(
            db_path,
            "from django.contrib.auth import get_user_model; "
            f"User = get_user_model(); {change}",
        )
        assert await closed_with(dashboard, 1 + 5) == CLOSE_REVOKED
        assert not server.tracebacks(), server.log
