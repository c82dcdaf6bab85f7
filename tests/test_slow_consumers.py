"""A client that stops reading: its room receives 100,000 messages of 1 KiB through
a real server, under each ASGI server. The server's memory stays bounded (the
outbound limit refuses deliveries to it, then closes it with 4013), every client
that reads gets everything in order, and every delivery refused to the stalled
client is a failure in the `SendResult` its sender is told about.

What the stalled client sees when it reads again depends on the server (README,
"ASGI servers"): daphne drops the connection 1 s after queueing the close frame
(no close code); hypercorn writes 4013 behind everything accepted for it; uvicorn
does too, unless its own keepalive (20 s ping + 20 s timeout) closed it first with
1011, as it does when the stall outlasts that.

The messages are `send` commands of one more client, so each `aether.sent` reply
carries the true counts of that broadcast: the stalled client lives in the same
process as the sender (across processes, see the notes: a refusal there is logged
by the receiving process, not counted by the sender).
"""

import asyncio
import json
import re
import time

import pytest

from tests.support.light_client import LightClient
from tests.support.reliability import (
    MemoryWatch,
    cpu_seconds,
    mib,
    own_cpu_seconds,
    record_figures,
)
from tests.support.servers import SERVERS, asgi_server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

ROOM = "room:slow"
MESSAGES = 100_000
PAYLOAD = 1024
IN_FLIGHT = 32  # commands the sender has not had a reply to yet
READER_LEAD = 400  # broadcasts the readers may lag behind (~450 KiB < 1 MiB limit)
LIMITS = {"commands_per_second": 1e9, "command_burst": 10**9}
SEQ = re.compile(rb'"payload":"(\d+) ')
SENT = re.compile(rb'"sent_count\\?":(\d+),\\?"failed_count\\?":(\d+)')
CLOSE_CODES = {"daphne": (None,), "uvicorn": (4013, 1011), "hypercorn": (4013,)}


class Reader:
    """Sequence numbers of the chat messages one client received, in order."""

    def __init__(self, progress: asyncio.Event) -> None:
        self.seqs: list[int] = []
        self.progress = progress
        self.client = LightClient(self.on_text)

    def on_text(self, frame: bytes) -> None:
        match = SEQ.search(frame[:200])
        if match:
            self.seqs.append(int(match[1]))
            self.progress.set()
        else:
            self.client.texts.put_nowait(frame)

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else -1


class Sender:
    """Sends the numbered messages and keeps the counts of every reply."""

    def __init__(self, progress: asyncio.Event) -> None:
        self.results: list[tuple[int, int]] = []
        self.progress = progress
        self.client = LightClient(self.on_text)

    def on_text(self, frame: bytes) -> None:
        match = SENT.search(frame)
        if match:
            self.results.append((int(match[1]), int(match[2])))
            self.progress.set()
        else:
            self.client.texts.put_nowait(frame)

    async def run(self, readers: list[Reader]) -> None:
        padding = "x" * (PAYLOAD - 8)
        for seq in range(MESSAGES):
            while (
                seq - len(self.results) >= IN_FLIGHT
                or seq - min(r.last for r in readers) > READER_LEAD
            ):
                self.progress.clear()
                async with asyncio.timeout(10):
                    await self.progress.wait()
            self.client.send_command("send", ROOM, f"{seq} {padding}")
        async with asyncio.timeout(30):
            while len(self.results) < MESSAGES:
                self.progress.clear()
                await self.progress.wait()


@pytest.mark.timeout(400)  # about 70-110 s of work; more when the machine is shared
@pytest.mark.parametrize("kind", SERVERS)
async def test_a_stalled_client_is_bounded_counted_and_closed(kind):
    limits = json.dumps(LIMITS)
    with asgi_server(kind, AETHER_WEBSOCKET_LIMITS=limits) as server:
        progress = asyncio.Event()
        readers = [Reader(progress) for _ in range(2)]
        stalled = Reader(progress)
        sender = Sender(progress)
        for member in [*readers, stalled]:
            await member.client.connect(server.port)
            member.client.send_command("join", ROOM)
            assert (await member.client.reply())[0] == "aether.joined"
        await sender.client.connect(server.port)
        stalled.client.pause_reading()
        watch = MemoryWatch(server.process.pid)
        started = time.monotonic()
        cpu_server, cpu_test = cpu_seconds(server.process.pid), own_cpu_seconds()
        await sender.run(readers)
        elapsed = time.monotonic() - started
        cpu_server = cpu_seconds(server.process.pid) - cpu_server
        cpu_test = own_cpu_seconds() - cpu_test
        growth = await watch.stop()
        stalled.client.resume_reading()  # read what reached it, up to the close
        close_code = await stalled.client.wait_closed(within=30)
        for client in (*(r.client for r in readers), sender.client, stalled.client):
            await client.close()
        log = server.log

    sent = sum(s for s, _ in sender.results)
    failed = sum(f for _, f in sender.results)
    members = [s + f for s, f in sender.results]
    left_at = members.index(2) if 2 in members else None
    accepted_for_stalled = sent - len(readers) * MESSAGES
    record_figures(
        f"Slow consumer ({kind}): 100,000 x 1 KiB to a room with a client that stops "
        "reading",
        "server memory bounded; the others receive everything in order; "
        "undelivered messages are failures in SendResult; closed with 4013",
        messages=MESSAGES,
        seconds=round(elapsed, 1),
        cpu_seconds_server=round(cpu_server, 1),
        cpu_seconds_clients=round(cpu_test, 1),
        server_rss_growth_mib=mib(growth),
        deliveries_refused_counted_failed=failed,
        stalled_client_received=len(stalled.seqs),
        accepted_for_stalled_client=accepted_for_stalled,
        accepted_but_unread_at_close=accepted_for_stalled - len(stalled.seqs),
        stalled_client_left_after_message=left_at,
        close_code=close_code,
        readers_missed=sum(MESSAGES - len(set(r.seqs)) for r in readers),
    )
    for reader in readers:
        assert reader.seqs == list(range(MESSAGES))
    assert stalled.seqs == list(range(len(stalled.seqs)))  # a prefix, no gaps
    assert set(members[:left_at]) == {3}
    assert set(members[left_at:]) == {2}
    assert failed > 0
    assert len(stalled.seqs) <= accepted_for_stalled < MESSAGES
    assert close_code in CLOSE_CODES[kind]
    assert growth < 16 * 1024 * 1024
    assert "Traceback" not in log
