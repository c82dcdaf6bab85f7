"""The chat page resumes after its connection is cut (headless Chromium, a real
daphne, the page reaching it through the tests' TCP proxy): messages broadcast
while it was away appear in order and the page says how many it recovered; when
more were missed than the room keeps, it says it reloaded and shows the newest.

Playwright's offline mode does not close WebSockets, so the cut is the proxy's:
it stops forwarding (the page's next attempt hangs in its handshake) and resets
the page's connections; forwarding again lets that attempt through."""

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from tests.support.servers import Browser, daphne_server
from tests.support.tcp_proxy import tcp_proxy
from tests.test_pages import RECONNECT_MS, browser, shot  # noqa: F401

LIMITS = {"commands_per_second": 10_000, "command_burst": 10_000}


@pytest.fixture(scope="module")
def server():
    """The demo as shipped (rooms keep 100 messages), taking commands quickly so
    that a test can broadcast more than a room keeps while the page is away."""
    with daphne_server(AETHER_WEBSOCKET_LIMITS=json.dumps(LIMITS)) as running:
        yield running


pytestmark = pytest.mark.browser


@pytest.fixture
def proxied(server) -> Iterator:
    with tcp_proxy(server.port) as proxy:
        yield proxy


@pytest.fixture
def page(browser, proxied) -> Iterator[Page]:  # noqa: F811 (the imported fixture)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(5000)
    yield context.new_page()
    context.close()


def broadcast(server, group: str, texts: list[str]) -> None:
    """Send `texts` to `group` as another client, straight to the server."""
    with connect(
        server.ws_url + "/ws/realtime/",
        subprotocols=["aether.v1"],
        additional_headers={"Origin": server.url},
        open_timeout=10,
    ) as ws:
        for text in texts:
            ws.send(json.dumps({"action": "send", "group": group, "message": text}))
        sent = 0
        while sent < len(texts):
            if json.loads(ws.recv(timeout=10))["type"] == "aether.sent":
                sent += 1


def open_room(page: Page, proxied, room: str) -> None:
    """Create the room (a page view creates none), then open it through the proxy."""
    Browser(f"http://127.0.0.1:{proxied.port}").login("staff").create_room(room)
    page.goto(f"http://127.0.0.1:{proxied.port}/chat/{room}/")
    expect(page.locator("#status")).to_have_text("Live")


def cut(page: Page, proxied) -> None:
    proxied.stall()
    proxied.drop_all()
    expect(page.locator("#status")).to_have_text("Reconnecting…")


def texts(page: Page) -> list[str]:
    return page.locator(".msg .bubble").all_inner_texts()


def test_missed_messages_appear_in_order_and_the_page_says_recovered(
    server,
    proxied,
    page,
):
    open_room(page, proxied, "resume-garden")
    broadcast(server, "room:resume-garden", ["before the cut"])
    expect(page.locator(".msg .bubble")).to_have_text(["before the cut"])
    cut(page, proxied)
    missed = [f"missed {n}" for n in range(1, 6)]
    broadcast(server, "room:resume-garden", missed)
    proxied.resume()
    expect(page.locator("#status")).to_have_text("Live", timeout=RECONNECT_MS)
    note = page.locator("#resume-note")
    expect(note).to_have_text(re.compile(r"Reconnected, \d+ messages recovered"))
    expect(page.locator(".msg .bubble")).to_have_text(["before the cut", *missed])
    broadcast(server, "room:resume-garden", ["after"])
    expect(page.locator(".msg .bubble")).to_have_text(
        ["before the cut", *missed, "after"]
    )
    shot(page, "chat-recovered")


def test_more_missed_than_the_room_keeps_reloads(server, proxied, page):
    open_room(page, proxied, "resume-flood")
    broadcast(server, "room:resume-flood", ["before the cut"])
    expect(page.locator(".msg .bubble")).to_have_text(["before the cut"])
    cut(page, proxied)
    broadcast(server, "room:resume-flood", [f"flood {n}" for n in range(120)])
    proxied.resume()
    expect(page.locator("#status")).to_have_text("Live", timeout=RECONNECT_MS)
    expect(page.locator("#resume-note")).to_have_text("Reconnected, reloaded")
    shown = page.locator(".msg .bubble")
    expect(shown.last).to_have_text("flood 119")
    bubbles = texts(page)
    assert bubbles[0] == "before the cut"
    floods = [int(text.split()[1]) for text in bubbles[1:]]
    assert floods == sorted(floods)
    assert floods[-1] == 119
    shot(page, "chat-reloaded")
