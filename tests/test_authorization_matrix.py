"""Authorization through real daphne servers (issue 6 point 4), as one matrix: every
user (anonymous, alice, bob, staff) x every kind of group (their own `user:`,
another's `user:`, a room, the dashboard) x every action (join, leave, send),

- through both command endpoints: ws/realtime/ (joins the user's own group on
  connect) and ws/chat/<room>/ (joins its room on connect, so it refuses the
  handshake to whoever may not be in a room);
- on both layers: in memory (one server) and Redis (two servers on a private
  Redis: actors on the first, listeners on the second);
- with the demo's setting (anonymous users may use rooms) and the library's
  default (they may not).

Every case gets its reply (`not_allowed` when refused). With Redis this process
reads `group_members` from the layer itself around every case: a refused join never
shows there, an allowed one shows exactly once. On every deployment the staff
dashboard's member counts after the matrix are what the allowed commands (and the
actors' own connections) made of the counts before it, and a rightful member of
each group listens: it gets every allowed send and none of the refused ones.
Also: a page from another origin cannot open the socket even with a valid session
cookie, and a logged-out session loses access on its next connection.
"""

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest

from aether_compat.facade import ChannelsFacade
from aether_compat.layers import RedisChannelLayer
from aether_compat.messages import now_ms
from testing_support.asgi_server import AsgiServer
from tests.support.light_client import HandshakeRefused, LightClient
from tests.support.redis_servers import redis_server
from tests.support.reliability import record_figures
from tests.support.servers import Browser, daphne_servers, prepare_database

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

USERS = ("anonymous", "alice", "bob", "staff")
KINDS = ("own", "other", "room", "dashboard")
ACTIONS = ("join", "leave", "send")
REPLIES = {"join": "aether.joined", "leave": "aether.left", "send": "aether.sent"}
ROOM = "room:matrix"
DASHBOARD = "dashboard:staff"
MARKER = "end-of-matrix"
ENDPOINTS = {"realtime": "/ws/realtime/", "chat": "/ws/chat/matrix-actors/"}
CHAT_ROOM = "room:matrix-actors"  # what a ws/chat/matrix-actors/ connection joins
REDIS_DEPLOYMENTS = [
    pytest.param(name, marks=pytest.mark.redis)
    for name in ("redis-anonymous-rooms", "redis-library-default")
]
DEPLOYMENTS = [
    *REDIS_DEPLOYMENTS,
    "memory-anonymous-rooms",
    "memory-library-default",
]


@dataclass
class Deployment:
    """The demo on one layer: `servers[0]` takes the actors, `servers[-1]` the
    listeners (two servers with Redis, one in memory); logins work on all (one
    database). `facade` reads the servers' Redis from this process (None in
    memory)."""

    backend: str
    servers: list[AsgiServer]
    facade: ChannelsFacade | None
    logins: dict[str, Browser]
    pks: dict[str, int]
    anonymous_rooms: bool

    def cookie(self, name: str) -> str | None:
        if name == "anonymous":
            return None
        return self.logins[name].ws_headers()["Cookie"]

    def user_groups(self) -> list[str]:
        return [f"user:{pk}" for pk in self.pks.values()]

    async def members(self, group: str) -> set[str] | None:
        if self.facade is None:
            return None
        return await self.facade.group_members(group)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def deployment(request, tmp_path_factory):
    backend, _, setting = request.param.partition("-")
    anonymous_rooms = setting == "anonymous-rooms"
    db_path = tmp_path_factory.mktemp("matrix") / "demo.sqlite3"
    prepare_database(db_path)
    env = {"AETHER_ALLOW_ANONYMOUS_ROOMS": "1" if anonymous_rooms else "0"}
    with contextlib.ExitStack() as stack:
        layer = facade = None
        if backend == "redis":
            redis = stack.enter_context(redis_server())
            env["AETHER_REDIS_URL"] = redis.url
            layer = RedisChannelLayer(hosts=[redis.url])
            facade = ChannelsFacade()
            facade.configure(layer)
        count = 2 if backend == "redis" else 1
        servers = stack.enter_context(daphne_servers(db_path, count, **env))
        logins = {n: Browser(servers[0].url).login(n) for n in USERS[1:]}
        pks = {n: browser.pk() for n, browser in logins.items()}
        for room in (ROOM, CHAT_ROOM):  # rooms the dashboard lists
            logins["alice"].create_room(room.removeprefix("room:"))
        yield Deployment(backend, servers, facade, logins, pks, anonymous_rooms)
        if layer is not None:
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


def joined_on_connect(deployment: Deployment, name: str, endpoint: str) -> str | None:
    """The group a new connection of `name` joins before any command, if any."""
    if endpoint == "chat":
        return CHAT_ROOM
    return None if name == "anonymous" else f"user:{deployment.pks[name]}"


def may_connect(deployment: Deployment, name: str, endpoint: str) -> bool:
    """ws/chat/ joins a room on connect: the handshake needs the room rule."""
    return endpoint != "chat" or allowed(name, "room", deployment.anonymous_rooms)


def command_change(action: str, group: str, on_connect: str | None) -> int:
    """Members an allowed command of a fresh connection adds to `group`."""
    if action == "join":
        return 0 if group == on_connect else 1
    if action == "leave":
        return -1 if group == on_connect else 0
    return 0


async def listeners(deployment: Deployment, counts: Counter) -> dict[str, LightClient]:
    """A rightful member of every group of the matrix, on the last server; the
    members they make are added to `counts`."""
    port = deployment.servers[-1].port
    found: dict[str, LightClient] = {}
    for name, pk in deployment.pks.items():
        found[f"user:{pk}"] = await LightClient().connect(
            port, cookie=deployment.cookie(name)
        )
        counts[f"user:{pk}"] += 1
    found[DASHBOARD] = await LightClient().connect(
        port, "/ws/dashboard/", cookie=deployment.cookie("staff")
    )
    counts[DASHBOARD] += 1
    room = await LightClient().connect(port, cookie=deployment.cookie("alice"))
    room.send_command("join", ROOM)
    assert (await room.reply())[0] == "aether.joined"
    counts[f"user:{deployment.pks['alice']}"] += 1
    counts[ROOM] += 1
    found[ROOM] = room
    return found


async def connect_as(port: int, path: str, cookie: str | None) -> LightClient | int:
    """A connected client, or the HTTP status its handshake was refused with."""
    try:
        return await LightClient().connect(port, path, cookie=cookie)
    except HandshakeRefused as refusal:
        return refusal.status


async def member_counts(dashboard: LightClient, groups: list[str]) -> dict[str, int]:
    """Member counts of `groups` from the first dashboard snapshot begun after this
    call (a group the dashboard does not list yet has none)."""
    since = now_ms()
    async with asyncio.timeout(10):
        while True:
            frame = await dashboard.next_json(within=10)
            if frame.get("type") != "dashboard.stats":
                continue
            data = json.loads(frame["payload"])
            if data["at"] > since:
                listed = {row["group"]: row["members"] for row in data["groups"]}
                return {group: listed.get(group, 0) for group in groups}


async def settled_counts(
    dashboard: LightClient, expected: dict[str, int], within: float = 15
) -> None:
    """Wait until the dashboard shows `expected` (connections of earlier tests may
    still be leaving their groups); fail after `within` seconds."""
    counts: dict[str, int] = {}
    try:
        async with asyncio.timeout(within):
            while counts != expected:
                counts = await member_counts(dashboard, list(expected))
    except TimeoutError:
        raise AssertionError(f"dashboard shows {counts}, not {expected}") from None


async def end_of_matrix(
    deployment: Deployment, listening: dict[str, LightClient], marker: str
):
    """Put a marker behind every send in each listened group: from this process
    through Redis, or (one process, in memory) as the listener's own send. Each run
    has its own: a group that hands new members its last message (the demo's
    dashboard) would otherwise hand a listener the marker of the run before."""
    for group, client in listening.items():
        if deployment.facade is not None:
            await deployment.facade.group(group).broadcast(marker)
        else:
            client.send_command("send", group, marker)


async def chat_until_marker(client: LightClient, marker: str) -> dict[str, set[str]]:
    """The chat payloads a listener got before the end-of-matrix marker, by the
    group they were sent to (a listener may be in its user's group as well)."""
    seen: dict[str, set[str]] = {}
    while True:
        frame = await client.next_text(within=10)
        if frame == marker.encode():
            return seen
        if frame.startswith(MARKER.encode()):
            continue  # an earlier run's, handed on join (last_on_join)
        message = json.loads(frame)
        if message.get("type") == "chat.message":
            if message["payload"] == marker:
                return seen
            if message["payload"].startswith(MARKER):
                continue  # an earlier run's, handed on join (last_on_join)
            seen.setdefault(message["target"], set()).add(message["payload"])


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_the_full_authorization_matrix(deployment, endpoint):
    tracked = [ROOM, DASHBOARD, CHAT_ROOM, *deployment.user_groups()]
    expected: Counter = Counter()
    listening = await listeners(deployment, expected)
    # What a listener was handed on join (a group with last_on_join hands the
    # newest message of an earlier run) is not part of this run: skip to a start.
    start = f"{MARKER}-start-{uuid.uuid4().hex[:8]}"
    await end_of_matrix(deployment, listening, start)
    for client in listening.values():
        await chat_until_marker(client, start)
    dashboard = await LightClient().connect(
        deployment.servers[-1].port, "/ws/dashboard/", cookie=deployment.cookie("staff")
    )
    expected[DASHBOARD] += 1
    await settled_counts(dashboard, {group: expected[group] for group in tracked})
    sent_by_group: dict[str, set[str]] = {group: set() for group in listening}
    refused = allowed_count = 0
    actors = []
    for name in USERS:
        for kind in KINDS:
            group = group_of(deployment, name, kind)
            for action in ACTIONS:
                case = f"{endpoint}-{name}-{kind}-{action}"
                on_connect = joined_on_connect(deployment, name, endpoint)
                before = await deployment.members(group)
                actor = await connect_as(
                    deployment.servers[0].port,
                    ENDPOINTS[endpoint],
                    deployment.cookie(name),
                )
                if not isinstance(actor, LightClient):  # the handshake was refused
                    assert not may_connect(deployment, name, endpoint), case
                    assert actor == 403, case
                    assert await deployment.members(group) == before, case
                    refused += 1
                    continue
                assert may_connect(deployment, name, endpoint), case
                actors.append(actor)
                if on_connect is not None:
                    expected[on_connect] += 1
                connect_change = 1 if group == on_connect else 0
                actor.send_command(action, group, case if action == "send" else None)
                kind_of_reply, payload = await actor.reply()
                after = await deployment.members(group)
                if allowed(name, kind, deployment.anonymous_rooms):
                    allowed_count += 1
                    assert kind_of_reply == REPLIES[action], (case, payload)
                    if action == "send":
                        sent_by_group[group].add(case)
                    change = command_change(action, group, on_connect)
                    expected[group] += change
                    if before is not None:
                        assert len(after) - len(before) == connect_change + change, case
                else:
                    refused += 1
                    assert (kind_of_reply, payload["code"]) == (
                        "aether.error",
                        "not_allowed",
                    ), case
                    assert connect_change == 0, case
                    assert after == before, case
    counts = await member_counts(dashboard, tracked)
    assert counts == {group: expected[group] for group in tracked}
    marker = f"{MARKER}-{uuid.uuid4().hex[:8]}"
    await end_of_matrix(deployment, listening, marker)
    received: dict[str, set[str]] = {group: set() for group in listening}
    for client in listening.values():
        for group, payloads in (await chat_until_marker(client, marker)).items():
            received.setdefault(group, set()).update(payloads)
    for client in [*actors, *listening.values(), dashboard]:
        await client.close()
    record_figures(
        f"Authorization matrix through daphne ({deployment.backend} layer, "
        f"ws/{endpoint}/, anonymous rooms "
        f"{'allowed' if deployment.anonymous_rooms else 'refused'})",
        "every refused case gets an error frame (or a refused handshake) and never "
        "appears among the members; listeners get exactly the allowed sends",
        cases=len(USERS) * len(KINDS) * len(ACTIONS),
        allowed=allowed_count,
        refused=refused,
        refused_leaks=sum(len(received[g] - sent_by_group[g]) for g in received),
    )
    assert received == sent_by_group
    assert not [line for s in deployment.servers for line in s.tracebacks()]


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
        # The origin is compared whole (scheme, host and port), as Django's CSRF
        # check does: another port or scheme of the same host is another site.
        pytest.param("http://127.0.0.1:1", 403, id="other-port-same-host"),
        pytest.param("https://127.0.0.1", 403, id="other-scheme-same-host"),
    ],
)
@pytest.mark.parametrize("deployment", REDIS_DEPLOYMENTS, indirect=True)
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


@pytest.mark.parametrize("deployment", REDIS_DEPLOYMENTS, indirect=True)
async def test_a_logged_out_session_is_anonymous_on_its_next_connection(deployment):
    browser = Browser(deployment.servers[0].url).login("bob")
    cookie = browser.ws_headers()["Cookie"]
    group = f"user:{deployment.pks['bob']}"
    facade = deployment.facade
    before = await facade.group_members(group)
    open_tab = await LightClient().connect(deployment.servers[0].port, cookie=cookie)
    again = None
    try:
        assert len(await facade.group_members(group)) == len(before) + 1
        browser.logout()
        # The tab opened before the logout is closed at once, after leaving its
        # groups (rights follow the session, not the moment of connecting).
        assert await open_tab.wait_closed(within=10) == 4003
        assert await facade.group_members(group) == before
        again = await LightClient().connect(deployment.servers[1].port, cookie=cookie)
        again.send_command("join", group)
        kind, payload = await again.reply()
        assert (kind, payload["code"]) == ("aether.error", "not_allowed")
        assert await facade.group_members(group) == before
    finally:
        for client in (open_tab, again):
            if client is not None:
                await client.close()
