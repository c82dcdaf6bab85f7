"""The optional maximum connection lifetime (`max_lifetime_seconds`): a socket is
closed with 4012 after it (less up to 10 %), having left its groups, and the
browser client reconnects at once, getting the rights its user has then."""

import asyncio
import json
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from aether_compat.limits import CLOSE_LIFETIME, Limits
from tests.support.e2e_ws import close_code, command, open_ws, reply
from tests.support.servers import Browser, daphne_server
from tests.test_pages import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, open_room

LIFETIME = 2.0


def test_there_is_no_lifetime_unless_one_is_set():
    assert Limits().max_lifetime_seconds == float("inf")
    assert Limits.from_mapping({"max_lifetime_seconds": 60}).max_lifetime_seconds == 60
    with pytest.raises(ValueError, match="max_lifetime_seconds"):
        Limits.from_mapping({"max_lifetime_seconds": 0})


@pytest.mark.e2e
async def test_a_socket_is_closed_with_4012_after_its_lifetime():
    """Two sockets (a user's and a guest's) are closed with 4012 between 90 % and
    100 % of the lifetime (plus scheduling slack), out of their groups."""
    limits = json.dumps({"max_lifetime_seconds": LIFETIME})
    with daphne_server(AETHER_WEBSOCKET_LIMITS=limits) as server:
        alice = Browser(server.url).login("alice")
        started = time.monotonic()
        sockets = [await open_ws(server, alice), await open_ws(server)]
        for ws in sockets:
            await command(ws, "join", "room:lifetime")
            assert (await reply(ws))[0] == "aether.joined"
        codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
        lived = time.monotonic() - started
        assert codes == [CLOSE_LIFETIME, CLOSE_LIFETIME]
        assert 0.9 * LIFETIME <= lived < LIFETIME + 1.5
        watcher = await open_ws(server, alice)
        await command(watcher, "send", "room:lifetime", "anyone?")
        kind, sent = await reply(watcher)
        assert (kind, sent["sent_count"]) == ("aether.sent", 0)
        await watcher.close()


@pytest.mark.browser
def test_a_page_reconnects_at_once_after_its_lifetime():
    """The chat page is closed with 4012, reconnects with no wait (not the
    backoff) and is Live again in its room."""
    limits = json.dumps({"max_lifetime_seconds": LIFETIME})
    with (
        daphne_server(AETHER_WEBSOCKET_LIMITS=limits) as server,
        sync_playwright() as playwright,
    ):
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            page = chromium.new_context().new_page()
            page.set_default_timeout(WAIT_MS)
            open_room(page, server.url, "lifetime")
            expect(page.locator("#status")).to_have_text("Live")
            page.evaluate(
                "window.states = [];"
                " window.demo.client.on('state', (state, info) =>"
                " window.states.push({state, code: info?.code, delay: info?.delay}));"
                " true"
            )
            page.wait_for_function(
                "window.states.some((s) => s.state === 'open')",
                timeout=LIFETIME * 1000 + WAIT_MS,
            )
            first = page.evaluate("window.states[0]")
            assert first == {
                "state": "reconnecting",
                "code": CLOSE_LIFETIME,
                "delay": 0,
            }
            expect(page.locator("#status")).to_have_text("Live")
        finally:
            chromium.close()
