"""The demo chat tells messages apart by connection, never by display name: each
chat frame's `sender` is an opaque id of the connection that sent it (a fresh one
per connection, neither the name nor the channel), and the page marks as its own
only what its own connection sent, even when another tab or guest shows the same
name."""

import asyncio
import json

import pytest
import websockets
from playwright.sync_api import expect, sync_playwright

from tests.support.e2e_ws import WAIT
from tests.support.servers import Browser, daphne_server
from tests.test_pages import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, login, open_room, say


async def open_chat(server, browser: Browser, room: str):
    """A v1 socket of the chat page of `room`, as `browser`'s user."""
    return await websockets.connect(
        f"{server.ws_url}/ws/chat/{room}/",
        subprotocols=["aether.v1"],
        additional_headers=browser.ws_headers(),
        open_timeout=WAIT,
        max_queue=None,
    )


async def next_chat_frame(ws, kind: str) -> dict:
    """The next `aether.message` frame whose ChannelMessage is of type `kind`,
    with that message under "message"."""
    async with asyncio.timeout(WAIT):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") != "aether.message":
                continue
            message = json.loads(frame["data"])
            if message["type"] == kind:
                return {**frame, "message": message}


@pytest.mark.e2e
async def test_chat_frames_name_the_sending_connection_not_the_user():
    """Two sockets of one user get two different opaque ids (chat.connection);
    the frame of each one's message carries its own id, the message the name."""
    with daphne_server() as server:
        alice = Browser(server.url).login("alice")
        alice.create_room("twins")
        first = await open_chat(server, alice, "twins")
        second = await open_chat(server, alice, "twins")
        ids = [
            (await next_chat_frame(ws, "chat.connection"))["message"]["payload"]
            for ws in (first, second)
        ]
        assert ids[0] != ids[1]
        assert all(len(connection) >= 16 for connection in ids)
        for ws, own in ((first, ids[0]), (second, ids[1])):
            await ws.send(
                json.dumps({"action": "send", "group": "room:twins", "message": own})
            )
            for reader in (first, second):
                frame = await next_chat_frame(reader, "chat.message")
                assert frame["sender"] == own
                assert frame["message"]["sender"] == "alice"
                assert frame["message"]["payload"] == own
        for ws in (first, second):
            await ws.close()


@pytest.mark.browser
def test_two_tabs_of_one_user_mark_only_their_own_messages_as_mine():
    """alice in two tabs of one room: what tab one sends is "mine" in tab one and
    not in tab two, though both show the sender as alice."""
    with daphne_server() as server, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            context = chromium.new_context()
            context.set_default_timeout(WAIT_MS)
            one = context.new_page()
            login(one, server.url, "alice")
            open_room(one, server.url, "two-tabs")
            two = context.new_page()
            two.goto(server.url + "/chat/two-tabs/")
            for tab in (one, two):
                expect(tab.locator("#status")).to_have_text("Live")
            say(one, "from tab one")
            for tab in (one, two):
                message = tab.locator(".msg", has_text="from tab one")
                expect(message.locator(".meta b")).to_have_text("alice")
            expect(one.locator(".msg.mine", has_text="from tab one")).to_have_count(1)
            expect(two.locator(".msg", has_text="from tab one")).not_to_have_class(
                "msg mine"
            )
            expect(two.locator(".msg.mine")).to_have_count(0)
        finally:
            chromium.close()
