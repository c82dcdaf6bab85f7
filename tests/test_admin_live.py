"""The live admin page in headless Chromium against a real daphne: a staff user
watches a room's members come and go, disconnects one, and that person's chat
page shows it was closed (4003). Non-staff users never see the page."""

import re
import urllib.error

import pytest
from playwright.sync_api import Page, expect

from tests import test_pages as pages
from tests.support.redis_servers import redis_server
from tests.support.servers import Browser, daphne_server, prepare_database
from tests.test_pages import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WAIT_MS = 10000

# The pages' fixtures, shared: one daphne server and one Chromium per module.
browser = pages.browser
server = pages.server


def _page(browser, base_url: str, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    login(page, base_url, username)
    return page


def _members(admin: Page) -> list[str]:
    return admin.locator("#members tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.channel)"
    )


def test_staff_sees_members_update_and_disconnects_one(browser, server):
    watch_and_disconnect(browser, server.url, server.url)


def test_the_disconnect_reaches_another_server_on_redis(browser, tmp_path):
    """Two daphne servers on one Redis: the admin page on the first lists the
    people chatting on the second and closes one of them there."""
    db_path = tmp_path / "shared.sqlite3"
    prepare_database(db_path)
    with (
        redis_server() as redis,
        daphne_server(db_path, AETHER_REDIS_URL=redis.url) as first,
        daphne_server(db_path, AETHER_REDIS_URL=redis.url) as second,
    ):
        watch_and_disconnect(browser, first.url, second.url)


def watch_and_disconnect(browser, admin_url: str, chat_url: str) -> None:
    """Staff on `admin_url` watches alice then bob join a room on `chat_url`,
    disconnects alice, and alice's page shows the close code 4003."""
    admin = _page(browser, admin_url, "staff")
    alice = _page(browser, chat_url, "alice")
    bob = _page(browser, chat_url, "bob")
    try:
        Browser(chat_url).login("staff").create_room("ops-room")
        alice.goto(chat_url + "/chat/ops-room/")
        expect(alice.locator("#status")).to_have_attribute("data-state", "open")
        admin.goto(admin_url + "/admin/aether/?group=room:ops-room")
        group_row = admin.locator('#groups tr[data-group="room:ops-room"]')
        expect(group_row.locator("td").nth(1)).to_have_text("1")
        expect(admin.locator("#members tbody tr")).to_have_count(1)
        (alices,) = _members(admin)

        bob.goto(chat_url + "/chat/ops-room/")
        expect(group_row.locator("td").nth(1)).to_have_text("2")
        expect(admin.locator("#members tbody tr")).to_have_count(2)
        expect(admin.locator("#process")).to_contain_text("connections")
        shot(admin, "admin-live")

        admin.locator(f'#members tr[data-channel="{alices}"] button').click()
        expect(admin.locator("#notice")).to_have_text(f"Closed {alices}")
        expect(alice.locator("#messages")).to_contain_text(
            re.compile(r"Closed by the server \(4003")
        )
        expect(admin.locator(f'#members tr[data-channel="{alices}"]')).to_have_count(0)
        expect(bob.locator("#status")).to_have_attribute("data-state", "open")
        shot(alice, "admin-live-closed")
    finally:
        for page in (admin, alice, bob):
            page.context.close()


def test_the_page_and_its_json_are_staff_only(server):
    """A user who is not staff is sent to the admin login; so is an anonymous one."""
    user = Browser(server.url).login("alice")
    for path in ("/admin/aether/", "/admin/aether/state.json"):
        assert 'id="login-form"' in user.get(path)
        assert 'id="login-form"' in Browser(server.url).get(path)
    staff = Browser(server.url).login("staff")
    assert '"groups"' in staff.get("/admin/aether/state.json")


def test_bad_input_is_a_400(server):
    staff = Browser(server.url).login("staff")
    with pytest.raises(urllib.error.HTTPError) as caught:
        staff.get("/admin/aether/state.json?group=bad%20name")
    caught.value.close()
    assert caught.value.code == 400
