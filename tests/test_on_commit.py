"""Broadcasts deferred to a commit: a rollback sends nothing, a commit sends to
every member, and members that get the message can read what was committed."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction

from aether_compat import Channels, SendResult
from aether_compat.deferred import Deferred
from project.demo.models import Room

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVERS = 100


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """The transactions run in asgiref's shared sync thread: close the connections
    they opened there, so that no later test without database access finds one
    (a consumer's close_old_connections would touch it)."""
    yield
    await sync_to_async(_drop_connections)()


def _drop_connections() -> None:
    # Django's SQLite backend ignores close() on an in-memory test database; the
    # main thread's connection keeps that shared-cache database alive.
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            connection.connection.close()
            connection.connection = None


async def _members(layer: Any, group: str, count: int) -> list[str]:
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    return channels


async def _first(layer: Any, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        return await layer.receive(channel)


async def test_a_rollback_delivers_nothing(facade_layer):
    """The deferred broadcast of a rolled-back transaction never goes: the first
    thing every member gets is a broadcast sent after it."""
    channels = await _members(facade_layer, "room:tx", 10)

    def work() -> Deferred:
        with transaction.atomic():
            Room.objects.create(name="rolled-back")
            pending = Channels.sync.group("room:tx").broadcast("new", on_commit=True)
            transaction.set_rollback(True)
        return pending

    pending = await sync_to_async(work)()
    assert not pending.done()
    await Channels.group("room:tx").broadcast("after")
    got = [(await _first(facade_layer, c))["text"] for c in channels]
    assert got == ["after"] * 10
    assert not pending.done()
    with pytest.raises(TimeoutError):
        pending.result(timeout=0)


async def test_a_commit_delivers_to_every_member_after_the_row_is_visible(
    facade_layer,
):
    """100 members; each, on getting the message, reads the committed row from
    another database connection."""
    channels = await _members(facade_layer, "room:tx2", RECEIVERS)

    async def receive_and_read(channel: str) -> bool:
        message = await _first(facade_layer, channel)
        return (
            message["text"] == "created"
            and await Room.objects.filter(name="committed").aexists()
        )

    readers = [asyncio.create_task(receive_and_read(c)) for c in channels]

    def work() -> Deferred:
        with transaction.atomic():
            Room.objects.create(name="committed")
            pending = Channels.sync.group("room:tx2").broadcast(
                "created", on_commit=True
            )
            assert not pending.done()  # nothing goes before the commit
        return pending

    pending = await sync_to_async(work)()
    result = await pending
    assert result == SendResult(RECEIVERS, 0)
    assert pending.result() == result
    assert await asyncio.gather(*readers) == [True] * RECEIVERS


async def test_async_on_commit_outside_a_transaction_sends_at_once(facade_layer):
    """From async code (no transaction there) the Deferred completes at once."""
    (channel,) = await _members(facade_layer, "room:tx3", 1)
    pending = await Channels.group("room:tx3").broadcast("now", on_commit=True)
    assert isinstance(pending, Deferred)
    assert await pending == SendResult(1, 0)
    assert (await _first(facade_layer, channel))["text"] == "now"


async def test_send_on_commit(facade_layer):
    """`Channels.send(..., on_commit=True)` defers too, and its Deferred holds the
    send's bool."""
    channel = await facade_layer.new_channel()

    def work() -> Deferred:
        with transaction.atomic():
            return Channels.sync.send(channel, "direct", on_commit=True)

    pending = await sync_to_async(work)()
    assert await pending is True
    assert (await _first(facade_layer, channel))["text"] == "direct"


def test_a_bad_argument_raises_at_the_call_not_at_the_commit():
    with pytest.raises(TypeError, match="message must be str"):
        Channels.sync.group("room:x").broadcast(b"bytes", on_commit=True)


async def test_a_retried_task_in_a_transaction_notifies_once(facade_layer):
    """A task that commits twice with one idempotency key (a retry): two Deferreds,
    one delivery; the second's result says it was a duplicate."""
    (channel,) = await _members(facade_layer, "room:tx4", 1)

    def task() -> Deferred:
        with transaction.atomic():
            return Channels.sync.group("room:tx4").broadcast(
                "paid", on_commit=True, idempotency_key="invoice-9"
            )

    first = await sync_to_async(task)()
    second = await sync_to_async(task)()
    assert await first == SendResult(1, 0)
    assert (await second).duplicate
    await Channels.group("room:tx4").broadcast("after")
    assert (await _first(facade_layer, channel))["text"] == "paid"
    assert (await _first(facade_layer, channel))["text"] == "after"
