"""The demo pages in headless Chromium (Debian's, driven by Playwright) against a
real daphne: chat between two people with a live member list, notifications across
tabs with their SendResult, the staff dashboard, and the browser client (aether.js)
living through a server restart and the server's heartbeats. Screenshots go to
$AETHER_SHOTS (default /tmp/shots) for a person to look at."""

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from testing_support.binaries import require
from testing_support.daphne import DaphneServer
from tests.support.servers import (
    PASSWORD,
    Browser,
    daphne_server,
    prepare_database,
)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("AETHER_SHOTS", "/tmp/shots"))
WAIT_MS = 5000
# A page retries with up to 2.5 s, 5 s, 10 s... of jitter (aether.js): once the server
# is back, the next attempt can be this far off.
RECONNECT_MS = 45000
PRESENCE_GRACE_MS = 5000  # the demo's presence_grace: a leave waits this long


@pytest.fixture(scope="module")
def server():
    with daphne_server() as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM)  # one line saying what to install, not Playwright's traceback
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, server):
    """Factory: a page in a fresh context (its own cookies), logged in if asked."""
    contexts = []

    def make(username: str | None = None, base_url: str | None = None) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        if username:
            login(page, base_url or server.url, username)
        return page

    yield make
    for context in contexts:
        context.close()


def login(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(base_url + "/")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png")


def open_room(page: Page, base_url: str, name: str) -> None:
    """Open chat room `name`, created first by a signed-in user (a page view
    creates no room)."""
    Browser(base_url).login("staff").create_room(name)
    page.goto(f"{base_url}/chat/{name}/")


def say(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def test_two_pages_chat_and_see_each_other_come_and_go(server, new_page):
    alice = new_page("alice")
    open_room(alice, server.url, "garden")
    expect(alice.locator("#status")).to_have_text("Live")
    bob = new_page("bob")
    bob.goto(server.url + "/chat/garden/")
    members = alice.locator("#members li")
    expect(members).to_have_count(2)
    expect(alice.locator('#members li[data-name="bob"]')).to_be_visible()

    say(alice, "Hello Bob, the roses are out")
    from_alice = bob.locator(".msg", has_text="the roses are out")
    expect(from_alice.locator(".meta b")).to_have_text("alice")
    say(bob, "On my way")
    expect(alice.locator(".msg", has_text="On my way").locator(".meta b")).to_have_text(
        "bob"
    )
    expect(alice.locator(".msg.mine")).to_have_count(1)
    shot(alice, "chat-alice")
    shot(bob, "chat-bob")

    bob.close()
    # bob's leave is announced once the presence grace period (5 s) has passed.
    expect(members).to_have_count(1, timeout=PRESENCE_GRACE_MS + WAIT_MS)
    expect(alice.locator('#members li[data-name="bob"]')).to_have_count(0)
    expect(alice.locator(".notice", has_text="bob left")).to_be_visible()
    expect(alice.locator("#member-count")).to_have_text("1")
    shot(alice, "chat-after-bob-left")


def test_an_anonymous_guest_chats_under_a_guest_name(server, new_page):
    guest = new_page()
    open_room(guest, server.url, "open-house")
    expect(guest.locator("#me")).to_have_text(re.compile(r"guest-[0-9a-f]{4}"))
    say(guest, "Anyone here?")
    expect(guest.locator(".msg.mine .bubble")).to_have_text("Anyone here?")


def test_notifications_reach_every_tab_and_show_the_send_result(server, new_page):
    first = new_page("alice")
    first.goto(server.url + "/notifications/")
    second = first.context.new_page()
    second.goto(server.url + "/notifications/")
    for page in (first, second):
        expect(page.locator("#status")).to_have_text("Live")
    say(first, "Your build finished")
    for page in (first, second):
        expect(page.locator(".feed li", has_text="Your build finished")).to_be_visible()
    result = first.locator("#results li").first
    expect(result).to_contain_text("2 sent")
    expect(result).to_contain_text("0 failed")
    shot(first, "notifications-sender")
    shot(second, "notifications-other-tab")


def test_other_users_tabs_get_nothing(server, new_page):
    alice = new_page("alice")
    alice.goto(server.url + "/notifications/")
    bob = new_page("bob")
    bob.goto(server.url + "/notifications/")
    expect(bob.locator("#status")).to_have_text("Live")
    say(alice, "for alice only")
    expect(alice.locator("#results li").first).to_contain_text("1 sent")
    expect(alice.locator(".feed li", has_text="for alice only")).to_be_visible()
    expect(bob.locator("#received-count")).to_have_text("0")


def test_dashboard_shows_groups_rates_and_a_chart(server, new_page):
    chatter = new_page("bob")
    chatter.goto(server.url + "/chat/lobby/")
    say(chatter, "a message for the chart")
    staff = new_page("staff")
    staff.goto(server.url + "/dashboard/")
    lobby = staff.locator('#groups tr[data-group="room:lobby"] .members-cell')
    expect(lobby).to_have_text("1")
    expect(
        staff.locator('#groups tr[data-group="dashboard:staff"] .members-cell')
    ).to_have_text("1")
    expect(staff.locator("#layer")).to_have_text("InMemoryChannelLayer")
    expect(staff.locator("#watchers")).to_have_text("staff")  # presence events
    expect(
        staff.locator('#groups tr[data-group="room:lobby"] .people-cell')
    ).to_have_text("1")
    drawn = staff.evaluate(
        "() => { const c = document.getElementById('chart');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
    )
    assert drawn > 1000
    shot(staff, "dashboard")


def test_dashboard_is_for_staff_only(server, new_page):
    alice = new_page("alice")
    alice.goto(server.url + "/dashboard/")
    expect(alice).to_have_url(re.compile(r"/login/\?next=/dashboard/"))
    expect(alice.locator(".lead")).to_contain_text("cannot open that page")


def test_home_page_links_everything(server, new_page):
    page = new_page()
    page.goto(server.url + "/")
    for href in ("/chat/lobby/", "/notifications/", "/dashboard/"):
        expect(page.locator(f'.card[href="{href}"]')).to_be_visible()
    shot(page, "home")
    page.goto(server.url + "/login/")
    shot(page, "login")


def test_a_page_closed_for_a_too_big_frame_says_disconnected(server, new_page):
    """Close code 4009 is final: the page shows Disconnected, not Reconnecting."""
    page = new_page()
    open_room(page, server.url, "oversized")
    expect(page.locator("#status")).to_have_text("Live")
    error = page.evaluate(
        "window.demo.client.send('room:oversized', 'x'.repeat(600 * 1024))"
        ".catch((error) => error.code)"
    )
    assert error == "disconnected"
    expect(page.locator("#status")).to_have_text("Disconnected")
    expect(page.locator("#send")).to_be_disabled()
    assert page.evaluate("window.demo.client.state") == "closed"


@pytest.fixture
def restartable(tmp_path):
    """A demo server that the test may stop and start again on the same port with
    the same database; every server it started is stopped at the end."""
    db_path = tmp_path / "demo.sqlite3"
    prepare_database(db_path)
    started: list[DaphneServer] = []

    def start(port: int = 0, **env: str) -> DaphneServer:
        started.append(DaphneServer(db_path, port=port, **env))
        return started[-1].start()

    yield start
    for running in started:
        running.stop()


def test_a_chat_page_reconnects_and_rejoins_after_a_server_restart(
    restartable, new_page
):
    first = restartable()
    alice = new_page("alice", first.url)
    open_room(alice, first.url, "phoenix")
    status = alice.locator("#status")
    expect(status).to_have_text("Live")
    assert alice.evaluate("window.demo.client.socket.protocol") == "aether.v1"
    # A group the page joins through the client (the room is joined by the URL).
    alice.evaluate(
        "window.side = [];"
        " window.demo.client.on('message', (f) => f.group === 'room:side'"
        " && window.side.push(JSON.parse(f.data).payload));"
        " window.demo.client.join('room:side')"
    )
    alice.wait_for_function("window.demo.client.groups.includes('room:side')")

    first.stop()
    expect(status).to_have_text("Reconnecting…")
    expect(alice.locator("#send")).to_be_disabled()
    shot(alice, "chat-reconnecting")

    second = restartable(port=first.port)
    expect(status).to_have_text("Live", timeout=RECONNECT_MS)
    bob = new_page("bob", second.url)
    bob.goto(second.url + "/chat/phoenix/")
    expect(bob.locator("#status")).to_have_text("Live")
    expect(alice.locator('#members li[data-name="bob"]')).to_be_visible()
    say(bob, "Back after the restart")
    expect(alice.locator(".msg", has_text="Back after the restart")).to_be_visible()
    bob.evaluate("window.demo.client.send('room:side', 'on the side')")
    alice.wait_for_function("window.side.includes('on the side')")
    assert alice.evaluate("window.demo.client.groups") == ["room:side"]
    shot(alice, "chat-after-restart")


def test_a_page_answers_the_servers_heartbeats_and_stays_live(restartable, new_page):
    """With pings every 0.5 s and a 3 s silence limit, the page's pongs keep one
    socket open through more pings than the limit allows unanswered."""
    limits = {"heartbeat_interval": 0.5, "heartbeat_timeout": 3.0}
    server = restartable(AETHER_WEBSOCKET_LIMITS=json.dumps(limits))
    page = new_page()
    open_room(page, server.url, "heartbeat")
    expect(page.locator("#status")).to_have_text("Live")
    page.evaluate(
        "() => { const client = window.demo.client;"
        " window.beat = { pings: 0, socket: client.socket, states: [] };"
        " client.on('state', (state) => window.beat.states.push(state));"
        " client.socket.addEventListener('message', (event) => {"
        "   if (JSON.parse(event.data).type === 'aether.ping') window.beat.pings++; });"
        "}"
    )
    page.wait_for_function("window.beat.pings >= 8", timeout=20000)
    assert page.evaluate("window.beat.states") == []
    assert page.evaluate("window.demo.client.socket === window.beat.socket")
    expect(page.locator("#status")).to_have_text("Live")
