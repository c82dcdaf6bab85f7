"""`SameOriginValidator`: a WebSocket handshake is accepted only from this site's
own origin (scheme, host and port) or a `CSRF_TRUSTED_ORIGINS` entry, as Django's
CSRF check decides for a POST."""

import pytest
import websockets
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import ApplicationCommunicator
from django.test import override_settings

from aether_compat.origins import SameOriginValidator
from tests.support.servers import daphne_server


class Accepting(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()


async def handshake(
    origin: str | None,
    host: str = "127.0.0.1:8000",
    scheme: str = "ws",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bool:
    """Run one handshake through the validator; True when it was accepted."""
    headers = [(b"host", host.encode()), *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {
        "type": "websocket",
        "path": "/ws/",
        "scheme": scheme,
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    app = ApplicationCommunicator(SameOriginValidator(Accepting.as_asgi()), scope)
    await app.send_input({"type": "websocket.connect"})
    reply = await app.receive_output(timeout=5)
    await app.send_input({"type": "websocket.disconnect", "code": 1000})
    await app.wait(timeout=5)
    return reply["type"] == "websocket.accept"


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "accepted"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", "ws", False),  # other port
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "ws", False),  # other scheme
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "wss", False),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "wss", True),
        ("chrome-extension://127.0.0.1", "127.0.0.1", "ws", False),
        ("http://127.0.0.1", "127.0.0.1", "ws", True),
        ("null", "127.0.0.1:8000", "ws", False),  # sandboxed iframes, file://
        ("http://evil.test:8000", "127.0.0.1:8000", "ws", False),
        (None, "127.0.0.1:8000", "ws", False),
    ],
)
async def test_only_this_sites_own_origin_is_accepted(origin, host, scheme, accepted):
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"], CSRF_TRUSTED_ORIGINS=[]):
        assert await handshake(origin, host, scheme) is accepted


async def test_a_host_outside_allowed_hosts_is_refused_even_from_itself():
    with override_settings(ALLOWED_HOSTS=["example.com"]):
        assert not await handshake("http://attacker.test", "attacker.test")
        assert await handshake("http://example.com", "example.com")


async def test_trusted_origins_exact_and_subdomain_patterns():
    trusted = ["https://app.example.com", "https://*.partner.test"]
    with override_settings(
        ALLOWED_HOSTS=["api.example.com"], CSRF_TRUSTED_ORIGINS=trusted
    ):
        host = "api.example.com"
        assert await handshake("https://app.example.com", host, "wss")
        assert await handshake("https://a.b.partner.test", host, "wss")
        assert await handshake("https://partner.test", host, "wss")
        assert not await handshake("http://a.partner.test", host, "wss")  # scheme
        assert not await handshake("https://evilpartner.test", host, "wss")
        assert not await handshake("https://app.example.com.evil.test", host, "wss")


async def test_behind_a_tls_proxy_the_forwarded_scheme_and_host_count():
    """The proxy speaks ws:// to the server; SECURE_PROXY_SSL_HEADER and
    USE_X_FORWARDED_HOST say what the browser saw, as for Django views."""
    forwarded = ((b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"chat.test"))
    with override_settings(
        ALLOWED_HOSTS=["chat.test"],
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        USE_X_FORWARDED_HOST=True,
    ):
        assert await handshake("https://chat.test", "backend:8000", extra=forwarded)
        assert not await handshake("http://chat.test", "backend:8000", extra=forwarded)
    with override_settings(ALLOWED_HOSTS=["chat.test", "backend"]):
        # Without the settings the headers are not believed.
        assert not await handshake("https://chat.test", "backend:8000", extra=forwarded)


@pytest.mark.e2e
async def test_the_demo_refuses_another_port_of_the_same_host():
    """The running demo: a page on another port of 127.0.0.1 cannot open a socket
    (cross-site WebSocket hijacking), while the demo's own origin can."""
    with daphne_server() as server:
        path = server.ws_url + "/ws/realtime/"
        other = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else 1}"
        for origin in (other, "chrome-extension://127.0.0.1"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(path, additional_headers={"Origin": origin})
            assert refused.value.response.status_code == 403
        ws = await websockets.connect(path, additional_headers={"Origin": server.url})
        await ws.close()
        assert "Traceback" not in server.log
