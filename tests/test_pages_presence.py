"""The chat page's member list follows the room's presence (issues 13 and 16), in
headless Chromium against two daphne servers on one private Redis: two people on
different servers see each other appear and disappear (one entry per person,
however many tabs), and the user of a server killed with kill -9 leaves the list
within `presence_timeout` + 2 s without anyone else joining."""

import time

import pytest
from playwright.sync_api import Page, expect

from tests import test_pages as pages
from tests.support.redis_servers import redis_server
from tests.support.reliability import record_figures
from tests.support.servers import (
    Browser,
    copy_database,
    daphne_servers,
    prepare_database,
)
from tests.test_pages import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.redis]

GRACE = 5.0  # the demo's presence_grace
PRESENCE_TIMEOUT = 10.0  # the Redis layer's default
WAIT_MS = 10000

browser = pages.browser  # one Chromium per module, test_pages' fixture


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages-presence") / "template.sqlite3"
    prepare_database(path)
    return path


@pytest.fixture
def two_servers(tmp_path, template_db):
    db_path = copy_database(template_db, tmp_path)
    with (
        redis_server() as redis,
        daphne_servers(db_path, 2, AETHER_REDIS_URL=redis.url) as servers,
    ):
        yield servers


@pytest.fixture
def open_page(browser):
    """Factory: a signed-in page (its own context) in chat room `room`."""
    contexts = []

    def make(base_url: str, username: str, room: str) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        login(page, base_url, username)
        page.goto(f"{base_url}/chat/{room}/")
        expect(page.locator("#status")).to_have_text("Live")
        return page

    yield make
    for context in contexts:
        context.close()


def entry(page: Page, name: str):
    return page.locator(f'#members li[data-name="{name}"]')


def test_two_people_on_two_servers_see_each_other_come_and_go(two_servers, open_page):
    first, second = two_servers
    Browser(first.url).login("staff").create_room("meadow")
    alice = open_page(first.url, "alice", "meadow")
    bob = open_page(second.url, "bob", "meadow")
    expect(entry(alice, "bob")).to_be_visible()
    expect(entry(bob, "alice")).to_be_visible()
    expect(entry(alice, "alice").locator(".you")).to_be_visible()
    expect(alice.locator("#member-count")).to_have_text("2")

    # Alice's second tab, on the other server: still one alice (that closing it
    # announces nothing, test_presence_e2e measures).
    alice_again = alice.context.new_page()
    alice_again.goto(f"{second.url}/chat/meadow/")
    expect(alice_again.locator("#members li")).to_have_count(2)
    expect(entry(alice_again, "alice").locator(".you")).to_be_visible()
    alice_again.close()
    expect(bob.locator("#members li")).to_have_count(2)
    shot(bob, "presence-both")

    bob.close()
    left_within = (GRACE + 2) * 1000
    expect(entry(alice, "bob")).to_have_count(0, timeout=left_within)
    expect(alice.locator(".notice", has_text="bob left")).to_be_visible()
    expect(alice.locator("#member-count")).to_have_text("1")
    shot(alice, "presence-after-bob-left")


def test_a_crashed_servers_user_leaves_the_member_list(two_servers, open_page):
    """Issue 16: after kill -9 of bob's server, alice's page drops bob within
    presence_timeout + 2 s, with nobody joining or leaving meanwhile."""
    first, second = two_servers
    Browser(first.url).login("staff").create_room("orchard")
    alice = open_page(second.url, "alice", "orchard")
    open_page(first.url, "bob", "orchard")
    expect(entry(alice, "bob")).to_be_visible()
    first.process.kill()
    killed = time.monotonic()
    within = PRESENCE_TIMEOUT + 2
    expect(entry(alice, "bob")).to_have_count(0, timeout=within * 1000)
    gone_after = time.monotonic() - killed
    record_figures(
        "Chat page: a crashed server's user leaves the member list (Redis)",
        "within presence_timeout + 2 s",
        presence_timeout_s=PRESENCE_TIMEOUT,
        left_the_list_after_kill_s=round(gone_after, 2),
    )
    expect(alice.locator(".notice", has_text="bob left")).to_be_visible()
    assert gone_after <= within
