"""Chat rooms exist only when a signed-in user creates one (the home page's POST
form, CSRF-checked, capped per user and in all); a page view or a socket joining
creates nothing, an unknown room's page is a 404 that offers to create it, and the
lists (home page, staff dashboard) show rooms by recent activity, written at most
once per interval per room."""

import http.server
import json
import re
import threading
import urllib.error
import urllib.request

import pytest

from project.demo.room_store import ActivityClock
from tests.support.e2e_ws import command, next_message, open_ws, reply
from tests.support.servers import Browser, daphne_server

ATTACKER_PAGE = """<!doctype html><form id="f" method="post" action="{target}">
<input name="name" value="0-FREE-CRYPTO-csrf"></form>
<script>document.getElementById("f").submit()</script>"""


def listed_rooms(browser: Browser) -> list[str]:
    """The rooms the home page lists, in its order."""
    rooms = re.search(
        r'<ul class="rooms" id="rooms">(.*?)</ul>', browser.get("/"), re.S
    )
    return re.findall(r'href="/chat/([^/]+)/"', rooms.group(1)) if rooms else []


def status_of(call, *args) -> tuple[int, str]:
    """The HTTP status and body of `call(*args)`, errors included."""
    try:
        answer = call(*args)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()
    if isinstance(answer, str):
        return 200, answer
    with answer:
        return answer.status, answer.read().decode()


async def dashboard_rooms(server, staff: Browser) -> list[str]:
    """The room groups of one dashboard snapshot, in its order."""
    dashboard = await open_ws(server, staff, "/ws/dashboard/")
    try:
        while (message := await next_message(dashboard)).type != "dashboard.stats":
            pass
        groups = [row["group"] for row in json.loads(message.payload)["groups"]]
        return [group for group in groups if group.startswith("room:")]
    finally:
        await dashboard.close()


@pytest.mark.e2e
async def test_a_page_view_or_a_socket_creates_no_room():
    """An anonymous GET of an unknown room is a 404 "no such room" page (with a
    login link, no form), a socket joining a room's group by URL or by command and
    chatting in it creates nothing: the home page still lists only the lobby. A
    signed-in visitor's 404 page offers to create the room."""
    with daphne_server() as server:
        anonymous = Browser(server.url)
        status, page = status_of(anonymous.get, "/chat/0-FREE-CRYPTO/")
        assert status == 404
        assert "No such room: #0-FREE-CRYPTO" in page
        assert "/login/?next=/chat/0-FREE-CRYPTO/" in page
        assert 'action="/rooms/new/"' not in page
        by_url = await open_ws(server, anonymous, "/ws/chat/0-free-socket/")
        await next_message(by_url)  # its welcome: the socket is in the group
        await command(by_url, "send", "room:0-free-socket", "spam")
        by_command = await open_ws(server, anonymous)
        await command(by_command, "join", "room:0-free-command")
        assert (await reply(by_command))[0] == "aether.joined"
        await command(by_command, "send", "room:0-free-command", "spam")
        assert (await next_message(by_command)).payload == "spam"  # its echo
        assert (await reply(by_command))[0] == "aether.sent"
        for ws in (by_url, by_command):
            await ws.close()
        assert listed_rooms(anonymous) == ["lobby"]
        alice = Browser(server.url).login("alice")
        status, page = status_of(alice.get, "/chat/0-FREE-CRYPTO/")
        assert status == 404
        assert 'action="/rooms/new/"' in page
        assert 'name="name" value="0-FREE-CRYPTO"' in page
        assert listed_rooms(alice) == ["lobby"]


@pytest.mark.e2e
def test_signed_in_users_create_rooms_within_the_caps():
    """Creating takes a signed-in user's POST with its CSRF token; at most
    `per_user` rooms each and `total` in all (the lobby counts); an existing name
    opens that room; an invalid name is explained."""
    caps = json.dumps({"per_user": 2, "total": 4})
    with daphne_server(DEMO_ROOMS=caps) as server:
        anonymous = Browser(server.url)
        page = anonymous.create_room("anon-room")  # redirected to the login page
        assert 'id="id_username"' in page
        alice = Browser(server.url).login("alice")
        forged = urllib.request.Request(
            server.url + "/rooms/new/",
            data=b"name=forged",
            headers={"Referer": server.url + "/"},
        )
        assert status_of(alice.opener.open, forged)[0] == 403  # no CSRF token
        assert "#a-one" in alice.create_room("a-one")
        assert "#a-two" in alice.create_room("a-two")
        status, page = status_of(alice.create_room, "a-three")
        assert status == 400
        assert "the most one person may create" in page
        bob = Browser(server.url).login("bob")
        assert "#a-one" in bob.create_room("a-one")  # exists: opens it
        status, page = status_of(bob.create_room, "no spaces")
        assert status == 400
        assert "A room name has no spaces" in page  # rooms.check_room_name
        assert "#b-one" in bob.create_room("b-one")
        status, page = status_of(bob.create_room, "b-two")
        assert status == 400
        assert "This site has 4 rooms, its limit" in page
        assert sorted(listed_rooms(bob)) == ["a-one", "a-two", "b-one", "lobby"]
        assert status_of(anonymous.get, "/chat/a-three/")[0] == 404


@pytest.mark.e2e
async def test_lists_show_rooms_by_recent_activity_written_at_most_once_per_interval():
    """The newest room comes first, a message moves its room to the top of the
    home page and of the staff dashboard; a second message within
    `activity_seconds` writes nothing (the order stays)."""
    with daphne_server() as server:
        alice = Browser(server.url).login("alice")
        staff = Browser(server.url).login("staff")
        alice.create_room("zebra")
        alice.create_room("aardvark")
        assert listed_rooms(alice) == ["aardvark", "zebra", "lobby"]
        # The dashboard lists groups that have members: one in each room.
        present = [
            await open_ws(server, alice, f"/ws/chat/{room}/")
            for room in ("lobby", "aardvark", "zebra")
        ]
        await say(server, alice, "zebra")
        assert listed_rooms(alice) == ["zebra", "aardvark", "lobby"]
        assert await dashboard_rooms(server, staff) == [
            "room:zebra",
            "room:aardvark",
            "room:lobby",
        ]
        await say(server, alice, "aardvark")
        assert listed_rooms(alice) == ["aardvark", "zebra", "lobby"]
        await say(server, alice, "zebra")  # within `activity_seconds` of its last
        assert listed_rooms(alice) == ["aardvark", "zebra", "lobby"]
        for ws in present:
            await ws.close()


async def say(server, browser: Browser, room: str) -> None:
    """Send a message on `room`'s chat page socket; return once the server replied
    to the send, which it does after recording the activity."""
    ws = await open_ws(server, browser, f"/ws/chat/{room}/")
    await command(ws, "send", f"room:{room}", "hello")
    while (await next_message(ws)).type != "aether.sent":
        pass
    await ws.close()


def test_activity_is_due_once_per_interval_per_room():
    now = [100.0]
    clock = ActivityClock(lambda: 30.0, clock=lambda: now[0], size=2)
    assert clock.due("a")
    assert clock.due("b")
    assert not clock.due("a")
    now[0] += 29.9
    assert not clock.due("a")
    now[0] += 0.2
    assert clock.due("a")
    assert clock.due("c")  # remembers 2 rooms: forgets b
    assert clock.due("b")


@pytest.mark.browser
def test_a_page_of_another_site_cannot_create_a_room_with_the_users_cookies():
    """Chromium, signed in as alice, opens an attacker's page (another port) that
    posts the creation form to the demo: Django's CSRF check refuses it (403) and
    no room exists."""
    from playwright.sync_api import sync_playwright

    from tests.test_pages import CHROMIUM, CHROMIUM_ARGS, login

    with daphne_server() as server, _attacker(server.url + "/rooms/new/") as evil:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            try:
                page = chromium.new_context().new_page()
                login(page, server.url, "alice")
                with page.expect_response(server.url + "/rooms/new/") as posted:
                    page.goto(evil)
                assert posted.value.status == 403
            finally:
                chromium.close()
        assert listed_rooms(Browser(server.url)) == ["lobby"]


class _attacker:
    """An HTTP server on another loopback port whose one page auto-submits a form
    to `target`."""

    def __init__(self, target: str) -> None:
        body = ATTACKER_PAGE.format(target=target).encode()

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Page)

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_port}/"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
