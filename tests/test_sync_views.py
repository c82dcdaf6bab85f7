"""`Channels.sync` from code that is not async: Django views through the test client
(sync and under an async server), plain threads, and the refusal inside a loop."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from aether_compat import Channels, SendResult
from tests.support.facade import Inbox, receive

pytestmark = pytest.mark.urls("tests.urls_facade")


def three_sessions_one_full(layer):
    """Two sessions with senders and one plain channel already at capacity (1), all
    in `room:view`; set up through the sync twin."""
    inboxes = [Inbox(), Inbox()]
    ids = [async_to_sync(layer.new_channel)() for _ in range(3)]
    for session_id, inbox in zip(ids, inboxes, strict=False):
        Channels.sync.register_session(session_id, inbox)
    assert Channels.sync.send(ids[2], "fills it") is True
    for session_id in ids:
        Channels.sync.group_add("room:view", session_id)
    return ids, inboxes


def test_sync_view_reports_sent_2_failed_1(make_layer):
    """A view broadcasting to three sessions, one of them full."""
    Channels.configure(make_layer(capacity=1))
    ids, inboxes = three_sessions_one_full(Channels.layer)
    response = Client().post("/broadcast/room:view/", {"text": "hi"})
    assert response.status_code == 200
    first, *errors = response.content.decode().splitlines()
    assert first == "sent=2 failed=1"
    assert len(errors) == 1
    assert ids[2] in errors[0]
    assert "full" in errors[0]
    for inbox in inboxes:
        assert async_to_sync(inbox.wait_for)(1) == ["hi"]


async def test_sync_view_under_an_async_server_runs_sessions_on_its_loop(make_layer):
    """Served by ASGI, the sync view runs in a worker thread; the twin hands the
    broadcast back to the server's loop, where the sessions' sockets live."""
    Channels.configure(make_layer(capacity=1))
    _, inboxes = await asyncio.to_thread(three_sessions_one_full, Channels.layer)
    response = await AsyncClient().post("/broadcast/room:view/", {"text": "hi"})
    assert response.content.decode().splitlines()[0] == "sent=2 failed=1"
    for inbox in inboxes:
        assert await inbox.wait_for(1) == ["hi"]
        assert set(inbox.threads) == {threading.get_ident()}


def test_sync_view_send_and_members(make_layer):
    Channels.configure(make_layer(capacity=1))
    channel = async_to_sync(Channels.layer.new_channel)()
    Channels.sync.group_add("room:v", channel)
    client = Client()
    assert client.get("/members/room:v/").json() == {"members": [channel]}
    assert client.post(f"/send/{channel}/", {"text": "a"}).json() == {"delivered": True}
    assert client.post(f"/send/{channel}/", {"text": "b"}).json() == {
        "delivered": False
    }
    assert async_to_sync(receive)(Channels.layer, channel)["text"] == "a"


def test_sync_view_with_a_bad_group_name_answers_400_with_the_rule():
    response = Client().post("/broadcast/room lobby/", {"text": "hi"})
    assert response.status_code == 400
    assert "Group name must be" in response.content.decode()


async def test_plain_thread_reaches_a_receiver_waiting_in_the_main_loop(layer):
    Channels.configure(layer)
    channel = await layer.new_channel()
    await Channels.group_add("room:thread", channel)
    waiting = asyncio.create_task(receive(layer, channel))
    twin = Channels.sync.group("room:thread")
    result = await asyncio.to_thread(twin.broadcast, "from a thread", "worker")
    assert result == SendResult(1)
    assert await waiting == {
        "type": "aether.message",
        "text": "from a thread",
        "sender": "worker",
        "group": "room:thread",
    }
    members = await asyncio.to_thread(Channels.sync.group_members, "room:thread")
    assert members == {channel}


@pytest.mark.parametrize(
    ("call", "await_hint"),
    [
        (lambda: Channels.sync.send("inbox", "hi"), "await Channels.send("),
        (lambda: Channels.sync.group_add("g", "inbox"), "await Channels.group_add("),
        (lambda: Channels.sync.group_members("g"), "await Channels.group_members("),
        (
            lambda: Channels.sync.group("g").broadcast("hi"),
            "await Channels.group(...).broadcast(",
        ),
        (
            lambda: Channels.sync.group("g").broadcast_binary(b"hi"),
            "await Channels.group(...).broadcast_binary(",
        ),
    ],
)
async def test_sync_twin_inside_a_running_loop_says_to_await(call, await_hint):
    with pytest.raises(RuntimeError, match="inside a running event loop") as info:
        call()
    assert await_hint in str(info.value)
