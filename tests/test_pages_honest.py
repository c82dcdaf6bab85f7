"""The demo shows what happens, in headless Chromium against a real daphne on a
private Redis: a `manage.py broadcast` to a room appears on its chat page as a
system line, a room name that cannot be used is explained, the dashboard lists only
groups with members and marks its numbers stale while its socket is down."""

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from testing_support.asgi_server import ROOT, project_env
from tests import test_pages as pages
from tests.support.redis_servers import redis_server
from tests.support.servers import daphne_server

# The pages' fixtures, shared: new_page opens its pages on this module's `server`.
browser = pages.browser
new_page = pages.new_page
restartable = pages.restartable
shot = pages.shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as redis:
        yield redis.url


@pytest.fixture(scope="module")
def server(redis_url):
    """The demo on the Redis layer, so that a command in another process reaches
    its pages (this module's `new_page` opens pages on it)."""
    with daphne_server(AETHER_REDIS_URL=redis_url) as running:
        yield running


def manage(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=project_env(None, AETHER_REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_cli_broadcast_appears_in_the_chat_as_a_system_line(
    server, redis_url, new_page
):
    page = new_page()
    pages.open_room(page, server.url, "ops-notes")
    expect(page.locator("#status")).to_have_text("Live")
    done = manage(
        "broadcast", "room:ops-notes", "Deploy at noon", "--sender", "ops",
        redis_url=redis_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Broadcast to 'room:ops-notes': sent=1 failed=0"
    line = page.locator(".notice.system")
    expect(line).to_have_text("ops: Deploy at noon")
    expect(line).to_have_attribute("data-type", "text")
    expect(page.locator(".msg")).to_have_count(0)  # not drawn as someone's chat
    shot(page, "chat-system-line")


def test_a_room_name_that_cannot_be_used_is_explained(server, new_page):
    page = new_page()
    page.goto(server.url + "/")
    field = page.locator('input[name="room"]')
    field.fill("my room")
    page.click("form.composer button.primary")
    # The form's own check stops it; the browser shows the field's title with it.
    assert field.evaluate("(input) => input.validity.patternMismatch")
    assert "no spaces" in field.get_attribute("title")
    expect(page).to_have_url(server.url + "/")
    for path, words in [
        ("/chat/?room=my room", "has no spaces"),
        ("/chat/?room=café", "'é' is not one of them"),
        ("/chat/" + "x" * 61 + "/", "this one has 61"),
    ]:
        page.goto(server.url + path)
        expect(page.locator("#room-name-problem")).to_contain_text(words)
        expect(page.locator("#status")).to_have_count(0)  # no chat was opened
    shot(page, "room-name-explained")


def test_the_dashboard_lists_only_groups_with_members(server, new_page):
    alice = new_page("alice")  # logged in: her user:N group exists, empty
    staff = new_page("staff")
    staff.goto(server.url + "/dashboard/")
    expect(staff.locator('#groups tr[data-group="dashboard:staff"]')).to_be_visible()
    expect(staff.locator('#groups tr[data-group^="user:"]')).to_have_count(0)
    alice.goto(server.url + "/notifications/")
    expect(alice.locator("#status")).to_have_text("Live")
    mine = staff.locator('#groups tr[data-group^="user:"] .members-cell')
    expect(mine).to_have_text("1")
    alice.close()
    expect(staff.locator('#groups tr[data-group^="user:"]')).to_have_count(0)


def test_the_dashboard_marks_its_numbers_stale_while_disconnected(
    restartable, new_page
):
    running = restartable()
    staff = new_page("staff", running.url)
    staff.goto(running.url + "/dashboard/")
    expect(staff.locator("#status")).to_have_text("Live")
    first_snapshot = staff.locator("#total-members")
    expect(first_snapshot).not_to_have_text("\u2013")  # the dash shown before it
    expect(staff.locator("#stale")).to_be_hidden()
    running.stop()
    expect(staff.locator("#stale")).to_be_visible()
    expect(staff.locator("#stale")).to_contain_text("not updating")
    expect(staff.locator("body")).to_have_class(re.compile(r"\bstale\b"))
    shot(staff, "dashboard-stale")
