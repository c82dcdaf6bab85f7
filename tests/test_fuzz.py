"""Hostile input (issue 6 point 2): 10,000 generated frames through a real daphne
and 10,000 through WebsocketCommunicator, 10 MiB frames, hostile handshakes, and
group names that the protocol and the layers must judge alike.

Every frame gets exactly one `aether.*` reply, and an independent model of the
protocol's rules (`tests/frame_model.py`, written from the README, not from
protocol.py) says which: the command's own reply, or `aether.error` with a code
and an ASCII detail. The connection stays usable throughout, and no server logs an
exception.
"""

import asyncio
import json
import logging
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aether_compat import CommandRejected
from aether_compat.facade import ChannelsFacade
from aether_compat.layers import InMemoryChannelLayer
from aether_compat.protocol import parse_command
from tests.support.facade import as_default_layer
from tests.support.frame_model import (
    ANY_TEXT,
    FRAMES_PER_PATH,
    FUZZ,
    MAX_FRAME,
    WIRE_TEXT,
    ProtocolModel,
    check_reply,
    frames_of,
)
from tests.support.layers import build_layer
from tests.support.light_client import HandshakeRefused, LightClient
from tests.support.reliability import (
    MemoryWatch,
    mib,
    record_figures,
)
from tests.support.servers import daphne_server

NO_RATE_LIMIT = {"commands_per_second": 1e9, "command_burst": 10**9}


# Through a real daphne


@pytest.fixture(scope="module")
def fuzz_server():
    limits = json.dumps(NO_RATE_LIMIT)
    with daphne_server(AETHER_WEBSOCKET_LIMITS=limits) as server:
        yield server


@pytest.fixture
def wire_socket(fuzz_server):
    """A light client of the fuzz server, driven from a loop of its own so that each
    generated frame is one synchronous exchange."""
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(LightClient().connect(fuzz_server.port))
    yield loop, client
    loop.run_until_complete(client.close())
    loop.close()


async def _wire_exchange(client: LightClient, frame: str | bytes) -> list[dict]:
    if isinstance(frame, bytes):
        client.send_bytes(frame)
    else:
        client.send_text(frame)
    replies = [await client.next_json()]
    while not replies[-1]["type"].startswith("aether."):
        replies.append(await client.next_json())
    return replies


pytestmark = pytest.mark.reliability


@pytest.mark.e2e
def test_fuzzed_frames_through_daphne(fuzz_server, wire_socket):
    loop, client = wire_socket
    model = ProtocolModel()
    counts = {"frames": 0, "errors": 0}
    seen = len(fuzz_server.lines)

    @FUZZ
    @given(frames=frames_of(WIRE_TEXT))
    def exchange(frames):
        for frame in frames:
            replies = loop.run_until_complete(_wire_exchange(client, frame))
            counts["frames"] += 1
            counts["errors"] += replies[-1]["type"] == "aether.error"
            check_reply(model, frame, replies)

    exchange()
    last = '{"action": "leave", "group": "room:after"}'
    assert loop.run_until_complete(_wire_exchange(client, last))[0]["type"] == (
        "aether.left"
    )
    assert not client.closed.is_set()
    logged = [line for line in fuzz_server.lines[seen:] if _is_error(line)]
    record_figures(
        "Fuzzed frames through daphne",
        "every bad frame gets an error frame; the socket stays usable; no "
        "exception in the server log",
        frames=counts["frames"],
        error_frames=counts["errors"],
        joins_beyond_max_groups=model.over_max_groups,
        server_log_errors=len(logged),
    )
    assert counts["frames"] >= FRAMES_PER_PATH
    assert not logged, "".join(logged)


def _is_error(line: str) -> bool:
    return any(word in line for word in ("Traceback", "ERROR", "Exception"))


# Through WebsocketCommunicator (raw lone surrogates can only be sent this way)


@pytest.fixture
def in_process_socket():
    """The demo's ws/realtime/ consumer on a fresh in-memory layer, driven from a
    loop of its own so that each generated frame is one synchronous exchange."""
    from project.demo.consumers import RealtimeConsumer

    loop = asyncio.new_event_loop()
    communicator = WebsocketCommunicator(RealtimeConsumer.as_asgi(), "/ws/realtime/")
    communicator.scope["user"] = AnonymousUser()
    try:
        with (
            as_default_layer(InMemoryChannelLayer()),
            override_settings(AETHER_WEBSOCKET_LIMITS=NO_RATE_LIMIT),
        ):
            connected, _ = loop.run_until_complete(communicator.connect())
            assert connected
            yield loop, communicator
            loop.run_until_complete(communicator.disconnect())
    finally:
        loop.close()


async def _exchange(communicator, frame: str | bytes) -> list[dict]:
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})
    replies = [json.loads(await communicator.receive_from(5))]
    while not replies[-1]["type"].startswith("aether."):
        replies.append(json.loads(await communicator.receive_from(5)))
    return replies


class _Errors(logging.Handler):
    """Collects the records of level ERROR and above logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_fuzzed_frames_through_the_communicator(in_process_socket):
    loop, communicator = in_process_socket
    model = ProtocolModel()
    counts = {"frames": 0, "errors": 0}

    @FUZZ
    @given(frames=frames_of(ANY_TEXT))
    def exchange(frames):
        for frame in frames:
            replies = loop.run_until_complete(_exchange(communicator, frame))
            counts["frames"] += 1
            counts["errors"] += replies[-1]["type"] == "aether.error"
            check_reply(model, frame, replies)

    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        exchange()
    finally:
        logging.getLogger().removeHandler(errors)
    logged = errors.records
    record_figures(
        "Fuzzed frames through WebsocketCommunicator",
        "every bad frame gets an error frame; the consumer raises nothing",
        frames=counts["frames"],
        error_frames=counts["errors"],
        joins_beyond_max_groups=model.over_max_groups,
        errors_logged=len(logged),
    )
    assert counts["frames"] >= FRAMES_PER_PATH
    assert not logged


# 10 MiB frames: that socket is closed, memory stays bounded, others carry on


@pytest.mark.e2e
async def test_ten_mib_frames_close_their_socket_and_harm_no_one():
    huge = "x" * (10 * 1024 * 1024)
    with daphne_server() as server:
        bystander = await LightClient().connect(server.port)
        bystander.send_command("join", "room:calm")
        assert (await bystander.reply())[0] == "aether.joined"
        watch = MemoryWatch(server.process.pid)
        codes, round_trips = [], []
        for round_ in range(6):
            attacker = await LightClient().connect(server.port)
            attacker.send_text(huge)  # goes out while the bystander talks
            started = time.monotonic()
            bystander.send_command("send", "room:calm", f"still here {round_}")
            message = await bystander.next_json()
            assert (message["type"], message["payload"]) == (
                "chat.message",
                f"still here {round_}",
            )
            assert (await bystander.reply())[0] == "aether.sent"
            round_trips.append(time.monotonic() - started)
            codes.append(await attacker.wait_closed(within=20))
            await attacker.close()
        growth = await watch.stop()
        await bystander.close()
        tracebacks = server.tracebacks()
    record_figures(
        "10 MiB frames (6 in a row)",
        "the connection is closed (daphne: no close frame, clients see 1006); "
        "server memory bounded; other clients unaffected",
        close_codes=sorted({str(code) for code in codes}),
        server_rss_growth_mib=mib(growth),
        bystander_round_trip_max_ms=round(1000 * max(round_trips), 1),
    )
    assert set(codes) <= {None, 1009}
    assert growth < 32 * 1024 * 1024
    assert not tracebacks


# Hostile handshakes: unknown paths and garbage cookies are refused or ignored


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "cookie", "status"),
    [
        pytest.param("/ws/nowhere/", None, 403, id="unknown-path"),
        pytest.param("/ws/%ff%fe/", None, 403, id="undecodable-path"),
        pytest.param("/ws/chat/" + "a" * 61 + "/", None, 403, id="room-too-long"),
        pytest.param(
            "/ws/realtime/", "sessionid=" + "x" * 4000, 101, id="fake-session"
        ),
        pytest.param("/ws/realtime/", "\x01;;==;sessionid", 101, id="garbage-cookie"),
        pytest.param("/ws/realtime/?%ff=%00", None, 101, id="odd-query"),
    ],
)
def test_hostile_handshakes_are_refused_or_anonymous(fuzz_server, path, cookie, status):
    async def attempt():
        client = LightClient()
        try:
            await client.connect(fuzz_server.port, path, cookie=cookie)
        except HandshakeRefused as refused:
            return refused.status
        client.send_command("join", "user:1")
        kind, payload = await client.reply()
        await client.close()
        assert (kind, payload["code"]) == ("aether.error", "not_allowed")
        return 101

    seen = len(fuzz_server.lines)
    assert asyncio.run(attempt()) == status
    assert not [line for line in fuzz_server.lines[seen:] if _is_error(line)]


# Group names: the protocol and every layer apply one rule


NAMES = st.one_of(
    st.text(max_size=120),
    st.from_regex(r"[A-Za-z0-9_.:\-!é ]{0,101}", fullmatch=True),
    st.sampled_from(["room:\u0663", "room:\n", "a" * 99, "a" * 100, "room:ok"]),
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def name_checkers(request):
    """Every public entry that takes a group name, on one layer, run on one loop."""
    loop = asyncio.new_event_loop()
    layer = build_layer(request.param)
    facade = ChannelsFacade()
    facade.configure(layer)
    channel = loop.run_until_complete(layer.new_channel())
    entries = {
        "group_add": lambda name: layer.group_add(name, channel),
        "group_discard": lambda name: layer.group_discard(name, channel),
        "group_send": lambda name: layer.group_send(name, {"type": "x"}),
        "group_members": lambda name: layer.group_members(name),
        "facade.group_members": lambda name: facade.group_members(name),
        "facade.broadcast": lambda name: facade.group(name).broadcast("x"),
    }
    yield loop, entries
    loop.run_until_complete(layer.flush())
    loop.run_until_complete(layer.close())
    loop.close()


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    # one layer serves every example on purpose: names never depend on state
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NAMES)
def test_protocol_and_layers_judge_group_names_alike(name_checkers, name):
    """A name the protocol refuses (`invalid_group`) raises TypeError stating the
    rule at every API entry, and a name it accepts is accepted everywhere."""
    loop, entries = name_checkers
    frame = json.dumps({"action": "join", "group": name})
    code = None
    try:
        parse_command(frame, None, max_frame_bytes=MAX_FRAME)
    except CommandRejected as rejected:
        code = rejected.code
    assert code in (None, "invalid_group")

    async def refusal(entry) -> str | None:
        try:
            await entry(name)
        except TypeError as exc:
            return str(exc)
        return None

    for where, entry in entries.items():
        refused = loop.run_until_complete(refusal(entry))
        if code is None:
            assert refused is None, (where, name, refused)
        else:
            assert refused is not None, (where, name)
            assert "ASCII alphanumerics" in refused, (where, refused)
