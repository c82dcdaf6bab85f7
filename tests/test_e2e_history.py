"""Resume end to end: the demo behind a real daphne, real WebSocket clients.
Exactly 100 missed messages are recovered with history_size 100, 101 are not;
20+ resumes while another client broadcasts at about 1,000 messages a second lose
and repeat nothing over 10,000 messages; a late joiner of a cache-mode group gets
the last message on join.

`LAYERS` parametrises the servers: each entry names the environment a layer
needs (the Redis variants add theirs)."""

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.support.servers import asgi_server

pytestmark = [pytest.mark.e2e]

WAIT = 10
GROUP_OPTIONS = {
    "room:*": {"history_size": 100, "history_ttl": 300},
    "chat:seam-*": {"history_size": 5000, "history_ttl": 300},
    "chat:cache-*": {"history_size": 1, "history_ttl": 300, "last_on_join": True},
}
LIMITS = {"commands_per_second": 100_000, "command_burst": 100_000}


@contextlib.contextmanager
def memory_layer() -> Iterator[dict[str, str]]:
    yield {}


LAYERS = [pytest.param(memory_layer, id="memory")]
"""Context managers yielding the server environment of each layer under test."""


@pytest.fixture(scope="module", params=LAYERS)
def server(request):
    with (
        request.param() as layer_env,
        asgi_server(
            "daphne",
            AETHER_GROUP_OPTIONS=json.dumps(GROUP_OPTIONS),
            AETHER_WEBSOCKET_LIMITS=json.dumps(LIMITS),
            **layer_env,
        ) as running,
    ):
        yield running
        assert not running.tracebacks(), running.log


class Client:
    """An aether.v1 client that reads frames in the background, so a test can
    wait for replies while messages keep coming."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: Any, path: str = "/ws/realtime/") -> "Client":
        ws = await websockets.connect(
            server.ws_url + path,
            subprotocols=["aether.v1"],
            additional_headers={"Origin": server.url},
            open_timeout=WAIT,
            max_queue=None,
        )
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.ws:
                frame = json.loads(text)
                if frame["type"] != "aether.ping":
                    await self.frames.put(frame)

    async def command(self, **fields: Any) -> None:
        await self.ws.send(json.dumps(fields))

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self.frames.get()

    async def until(self, kind: str, messages: list[dict[str, Any]]) -> dict:
        """The next frame of type `kind`; messages before it go to `messages`."""
        while (frame := await self.next())["type"] != kind:
            if frame["type"] == "aether.message":
                messages.append(frame)
        return frame

    async def join(self, group: str, since: dict | None = None) -> dict[str, Any]:
        fields = {"action": "join", "group": group, "ref": "j"}
        if since is not None:
            fields["since"] = since
        await self.command(**fields)
        return await self.until("aether.joined", [])

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def broadcast(client: Client, group: str, texts: list[str]) -> None:
    """Send `texts` (pipelined) and wait for every `aether.sent`."""
    for text in texts:
        await client.command(action="send", group=group, message=text, echo=False)
    for _ in texts:
        await client.until("aether.sent", [])


def text_of(frame: dict[str, Any]) -> str:
    return json.loads(frame["data"])["payload"]


@pytest.mark.parametrize(("missed", "recovered"), [(100, True), (101, False)])
async def test_history_size_100_recovers_100_missed_not_101(server, missed, recovered):
    group = f"room:gap-{missed}"
    sender = await Client.open(server)
    reader = await Client.open(server)
    await reader.join(group)
    await broadcast(sender, group, ["first"])
    first = await reader.next()
    assert text_of(first) == "first"
    seen = {"epoch": first["epoch"], "offset": first["offset"]}
    await reader.close()
    await broadcast(sender, group, [f"m{n}" for n in range(missed)])
    back = await Client.open(server)
    joined = await back.join(group, since=seen)
    assert (joined["recovered"], joined["offset"]) == (recovered, 1 + missed)
    await broadcast(sender, group, ["after"])
    got: list[dict[str, Any]] = []
    while not got or text_of(got[-1]) != "after":
        got.append(await back.next())
    expected = [f"m{n}" for n in range(missed)] if recovered else []
    assert [text_of(frame) for frame in got] == [*expected, "after"]
    assert [frame["offset"] for frame in got] == list(
        range(2 + missed - len(expected), 3 + missed)
    )
    await back.close()
    await sender.close()


async def test_resumes_under_1000_messages_a_second_lose_and_repeat_nothing(server):
    """The resuming client reads a batch, drops its connection and resumes from
    the last offset it saw, again and again, while the sender keeps the pace."""
    group, total = "chat:seam-x", 10_000
    sender = await Client.open(server)
    resumer = await Client.open(server)
    joined = await resumer.join(group)
    epoch, first = joined["epoch"], joined["offset"] + 1
    end = first + total - 1

    async def send_paced() -> None:
        started = time.monotonic()
        for n in range(total):
            await sender.command(
                action="send", group=group, message=f"m{n}", echo=False
            )
            ahead = started + (n + 1) / 1000 - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)  # the pace of the broadcast, not a wait
        for _ in range(total):
            await sender.until("aether.sent", [])

    pacing = asyncio.create_task(send_paced())
    offsets: list[int] = []
    resumes = 0
    try:
        while True:
            last = offsets[-1] if offsets else first - 1
            for _ in range(min(300, end - last)):
                frame = await resumer.next()
                assert frame["type"] == "aether.message", frame
                offsets.append(frame["offset"])
            if offsets[-1] >= end:
                break
            await resumer.close()
            resumer = await Client.open(server)
            since = {"epoch": epoch, "offset": offsets[-1]}
            assert (await resumer.join(group, since=since))["recovered"] is True
            resumes += 1
        async with asyncio.timeout(WAIT):
            await pacing
    finally:
        pacing.cancel()
    assert offsets == list(range(first, end + 1)), "a gap or a duplicate"
    assert resumes >= 20
    print(f"{resumes} resumes over {total:,} messages: 0 gaps, 0 duplicates")
    await resumer.close()
    await sender.close()


async def test_a_late_joiner_of_a_cache_group_gets_the_last_message(server):
    group = "chat:cache-stats"
    sender = await Client.open(server)
    await broadcast(sender, group, ["old", "newest"])
    late = await Client.open(server)
    joined = await late.join(group)
    assert (joined["recovered"], joined["offset"]) == (None, 2)
    last = await late.next()
    assert (text_of(last), last["offset"], last["epoch"]) == (
        "newest",
        2,
        joined["epoch"],
    )
    await late.close()
    await sender.close()


async def test_a_group_joined_by_url_resumes_from_the_query_string(server):
    sender = await Client.open(server)
    page = await Client.open(server, "/ws/chat/resume-url/")
    hello = await page.until("aether.joined", [])
    assert (hello["group"], hello["ref"], hello["recovered"]) == (
        "room:resume-url",
        None,
        None,
    )
    await broadcast(sender, "room:resume-url", ["seen"])
    messages: list[dict[str, Any]] = []
    while not messages or text_of(messages[-1]) != "seen":
        messages.append(await page.next())
    seen = messages[-1]
    await page.close()
    await broadcast(sender, "room:resume-url", ["one", "two"])
    query = f"?since=room:resume-url:{seen['epoch']}:{seen['offset']}"
    back = await Client.open(server, "/ws/chat/resume-url/" + query)
    joined = await back.until("aether.joined", [])
    assert joined["recovered"] is True
    replay = [await back.next() for _ in range(joined["offset"] - seen["offset"])]
    chat = [m for m in replay if json.loads(m["data"])["type"] == "chat.message"]
    assert [text_of(m) for m in chat] == ["one", "two"]
    assert [m["offset"] for m in replay] == list(
        range(seen["offset"] + 1, joined["offset"] + 1)
    )
    await back.close()
    await sender.close()
