"""Authorization through real daphne servers (issue 6 point 4): every user (anonymous,
alice, bob, staff) x every kind of group (their own `user:`, another's `user:`, a
room, the dashboard) x every action (join, leave, send), with the demo's setting
(anonymous users may use rooms) and the library's default (they may not).

The servers share a private Redis, so this process reads `group_members` from the
layer itself: a refused join never shows there, an allowed one shows exactly once.
A rightful member of each group listens on the other server: it gets every allowed
send and none of the refused ones. Also: a page from another origin cannot open
the socket even with a valid session cookie, and a logged-out session loses access
on its next connection.
"""

import asyncio
import json
from dataclasses import dataclass

import pytest

from aether_compat.facade import ChannelsFacade
from aether_compat.layers import RedisChannelLayer
from tests.support.light_client import HandshakeRefused, LightClient
from tests.support.redis_servers import redis_server
from tests.support.reliability import record_figures
from tests.support.servers import (
    Browser,
    DaphneServer,
    daphne_servers,
    prepare_database,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.redis]

USERS = ("anonymous", "alice", "bob", "staff")
KINDS = ("own", "other", "room", "dashboard")
ACTIONS = ("join", "leave", "send")
REPLIES = {"join": "aether.joined", "leave": "aether.left", "send": "aether.sent"}
ROOM = "room:matrix"
DASHBOARD = "dashboard:staff"
MARKER = "end-of-matrix"


@dataclass
class Deployment:
    """Two servers on one Redis: `servers[0]` for actors, `servers[1]` for the
    listeners; logins work on both (one database)."""

    servers: list[DaphneServer]
    facade: ChannelsFacade
    logins: dict[str, Browser]
    pks: dict[str, int]
    anonymous_rooms: bool

    def cookie(self, name: str) -> str | None:
        if name == "anonymous":
            return None
        return self.logins[name].ws_headers()["Cookie"]


@pytest.fixture(scope="module", params=["anonymous-rooms", "library-default"])
def deployment(request, tmp_path_factory):
    db_path = tmp_path_factory.mktemp("matrix") / "demo.sqlite3"
    prepare_database(db_path)
    rooms = "1" if request.param == "anonymous-rooms" else "0"
    with (
        redis_server() as redis,
        daphne_servers(
            db_path, 2, AETHER_REDIS_URL=redis.url, AETHER_ALLOW_ANONYMOUS_ROOMS=rooms
        ) as servers,
    ):
        logins = {n: Browser(servers[0].url).login(n) for n in USERS[1:]}
        pks = {n: browser.pk() for n, browser in logins.items()}
        facade = ChannelsFacade()
        layer = RedisChannelLayer(hosts=[redis.url])
        facade.configure(layer)
        yield Deployment(servers, facade, logins, pks, rooms == "1")
        asyncio.run(layer.close())  # its connections belong to each test's loop


def group_of(deployment: Deployment, name: str, kind: str) -> str:
    pks = deployment.pks
    return {
        "own": f"user:{pks.get(name)}",  # user:None for anonymous
        "other": f"user:{pks['alice' if name == 'bob' else 'bob']}",
        "room": ROOM,
        "dashboard": DASHBOARD,
    }[kind]


def allowed(name: str, kind: str, anonymous_rooms: bool) -> bool:
    """The README's rules, written out independently of permissions.py."""
    return {
        "own": name != "anonymous",
        "other": False,
        "room": name != "anonymous" or anonymous_rooms,
        "dashboard": name == "staff",
    }[kind]


async def listeners(deployment: Deployment) -> dict[str, LightClient]:
    """A rightful member of every group of the matrix, on the second server."""
    port = deployment.servers[1].port
    found: dict[str, LightClient] = {}
    for name, pk in deployment.pks.items():
        found[f"user:{pk}"] = await LightClient().connect(
            port, cookie=deployment.cookie(name)
        )
    found[DASHBOARD] = await LightClient().connect(
        port, "/ws/dashboard/", cookie=deployment.cookie("staff")
    )
    room = await LightClient().connect(port, cookie=deployment.cookie("alice"))
    room.send_command("join", ROOM)
    assert (await room.reply())[0] == "aether.joined"
    found[ROOM] = room
    return found


async def chat_until_marker(client: LightClient) -> dict[str, set[str]]:
    """The chat payloads a listener got before the end-of-matrix marker, by the
    group they were sent to (a listener may be in its user's group as well)."""
    seen: dict[str, set[str]] = {}
    while True:
        frame = await client.next_text(within=10)
        if frame == MARKER.encode():
            return seen
        message = json.loads(frame)
        if message.get("type") == "chat.message":
            seen.setdefault(message["target"], set()).add(message["payload"])


async def test_the_full_authorization_matrix(deployment):
    facade = deployment.facade
    listening = await listeners(deployment)
    sent_by_group: dict[str, set[str]] = {group: set() for group in listening}
    refused = allowed_count = 0
    actors = []
    for name in USERS:
        for kind in KINDS:
            group = group_of(deployment, name, kind)
            for action in ACTIONS:
                case = f"{name}-{kind}-{action}"
                actor = await LightClient().connect(
                    deployment.servers[0].port, cookie=deployment.cookie(name)
                )
                actors.append(actor)
                before = await facade.group_members(group)
                actor.send_command(action, group, case if action == "send" else None)
                kind_of_reply, payload = await actor.reply()
                after = await facade.group_members(group)
                if allowed(name, kind, deployment.anonymous_rooms):
                    allowed_count += 1
                    assert kind_of_reply == REPLIES[action], (case, payload)
                    if action == "send":
                        sent_by_group[group].add(case)
                    changed = len(after) - len(before)
                    assert changed == _expected_change(action, kind), case
                else:
                    refused += 1
                    assert (kind_of_reply, payload["code"]) == (
                        "aether.error",
                        "not_allowed",
                    ), case
                    assert after == before, case
    for group in listening:
        await facade.group(group).broadcast(MARKER)
    received: dict[str, set[str]] = {group: set() for group in listening}
    for client in listening.values():
        for group, payloads in (await chat_until_marker(client)).items():
            received.setdefault(group, set()).update(payloads)
    for client in [*actors, *listening.values()]:
        await client.close()
    record_figures(
        "Authorization matrix through daphne (anonymous rooms "
        f"{'allowed' if deployment.anonymous_rooms else 'refused'})",
        "every refused case gets an error frame and never appears in "
        "group_members; listeners get exactly the allowed sends",
        cases=len(USERS) * len(KINDS) * len(ACTIONS),
        allowed=allowed_count,
        refused=refused,
        refused_leaks=sum(len(received[g] - sent_by_group[g]) for g in received),
    )
    assert received == sent_by_group
    assert not [line for s in deployment.servers for line in s.tracebacks()]


def _expected_change(action: str, kind: str) -> int:
    """Members added by an allowed command of a fresh ws/realtime/ connection,
    which joined its user's own group on connect already."""
    if action == "join":
        return 0 if kind == "own" else 1
    if action == "leave":
        return -1 if kind == "own" else 0
    return 0


# Another origin cannot open the socket, even with a valid session cookie


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        pytest.param("", 101, id="same-origin"),
        pytest.param("http://evil.example", 403, id="other-host"),
        pytest.param("http://127.0.0.1.evil.example", 403, id="lookalike-host"),
        pytest.param("http://evil.example/127.0.0.1", 403, id="host-in-path"),
        pytest.param("null", 403, id="null-origin"),
        pytest.param(None, 403, id="no-origin"),
        pytest.param("file://", 403, id="file-page"),
        pytest.param("http://[", 400, id="malformed"),
        # ALLOWED_HOSTS names hosts, not origins: a page on another port of an
        # allowed host is let in (documented in the README's security notes).
        pytest.param("http://127.0.0.1:1", 101, id="other-port-same-host"),
    ],
)
async def test_only_the_sites_own_pages_open_the_socket(deployment, origin, status):
    try:
        client = await LightClient().connect(
            deployment.servers[0].port, origin=origin, cookie=deployment.cookie("bob")
        )
    except HandshakeRefused as refused:
        got = refused.status
    else:
        got = 101
        await client.close()
    assert got == status


# A logged-out session loses access on its next connection


async def test_a_logged_out_session_is_anonymous_on_its_next_connection(deployment):
    browser = Browser(deployment.servers[0].url).login("bob")
    cookie = browser.ws_headers()["Cookie"]
    group = f"user:{deployment.pks['bob']}"
    facade = deployment.facade
    before = await facade.group_members(group)
    open_tab = await LightClient().connect(deployment.servers[0].port, cookie=cookie)
    assert len(await facade.group_members(group)) == len(before) + 1
    browser.logout()
    again = await LightClient().connect(deployment.servers[1].port, cookie=cookie)
    again.send_command("join", group)
    kind, payload = await again.reply()
    assert (kind, payload["code"]) == ("aether.error", "not_allowed")
    assert len(await facade.group_members(group)) == len(before) + 1
    # The tab opened before the logout keeps what it had until it reconnects.
    open_tab.send_command("send", group, "still mine")
    assert (await open_tab.reply())[0] == "aether.sent"
    for client in (open_tab, again):
        await client.close()
