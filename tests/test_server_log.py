"""No client action may write an ERROR line or a traceback to a server's log: the
test servers fail a test on one (`AsgiServer.stop()` scans the log) unless the
test allows it by name, and the consumer logs the closes it expects at DEBUG."""

import logging
import textwrap
import urllib.request

import pytest
from channels.testing import WebsocketCommunicator

from aether_compat import Channels
from aether_compat.consumers import AetherConsumer
from testing_support.asgi_server import ROOT, AsgiServer, ServerLogError
from tests.support.facade import as_default_layer

NOISY_APP = '''
import logging

logger = logging.getLogger("noisy")


async def app(scope, receive, send):
    """Logs what its path asks for: /error an ERROR line, /exception a traceback."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/error":
        logger.error("a client made me fail")
    elif scope["path"] == "/exception":
        try:
            raise ValueError("on purpose")
        except ValueError:
            logger.exception("an allowed failure")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


def noisy_server(folder) -> AsgiServer:
    (folder / "noisy.py").write_text(textwrap.dedent(NOISY_APP))
    return AsgiServer(None, "noisy:app", PYTHONPATH=f"{ROOT}:{folder}").start()


def visit(server: AsgiServer, *paths: str) -> None:
    for path in (*paths, "/"):  # the last one: the lines before it are read
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            response.read()


@pytest.mark.e2e
def test_a_server_that_logged_an_error_fails_its_test_on_stop(tmp_path):
    server = noisy_server(tmp_path)
    visit(server, "/error")
    with pytest.raises(ServerLogError, match="a client made me fail"):
        server.stop()


@pytest.mark.e2e
def test_errors_a_test_allows_by_name_pass_with_their_traceback(tmp_path):
    server = noisy_server(tmp_path).allow("an allowed failure")
    visit(server, "/exception")
    server.stop()
    assert "Traceback (most recent call last)" in server.log
    assert server.errors() == []


class Plain(AetherConsumer):
    groups = ["room:log"]


async def test_an_expected_close_is_logged_at_debug_only(make_layer, caplog):
    """A socket closed by the application (`Channels.disconnect`) logs its close at
    DEBUG, nothing at INFO or above."""
    with as_default_layer(make_layer()):
        client = WebsocketCommunicator(Plain.as_asgi(), "/ws/")
        assert (await client.connect())[0]
        (channel,) = await Channels.group_members("room:log")
        with caplog.at_level(logging.DEBUG, logger="aether_compat"):
            await Channels.disconnect(channel, reason="a test")
            closed = await client.receive_output(5)
            await client.wait(5)
    assert closed["type"] == "websocket.close"
    ours = [r for r in caplog.records if channel in r.getMessage()]
    assert any("a test" in r.getMessage() for r in ours)
    assert [r.getMessage() for r in ours if r.levelno >= logging.INFO] == []
