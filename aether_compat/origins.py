"""`SameOriginValidator`: refuses WebSocket handshakes whose `Origin` is not this
site, comparing scheme, host and port as Django's CSRF check does for a POST.

Browsers send the user's cookies with a WebSocket handshake from any page, so a
page on another origin could open a socket as the user (cross-site WebSocket
hijacking). Channels' `AllowedHostsOriginValidator` compares host names only, which
lets in `http://127.0.0.1:9999` or `chrome-extension://127.0.0.1` for a site on
`http://127.0.0.1:8000`. Here the handshake is read as Django reads a request
(`ALLOWED_HOSTS`, `USE_X_FORWARDED_HOST`, `SECURE_PROXY_SSL_HEADER`), and its origin
must be this site's, or one of `CSRF_TRUSTED_ORIGINS` (with `*.` subdomain
patterns), exactly as for Django's CSRF check. A handshake without `Origin`
(not a browser) is refused too, as Channels' validators do.

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(routes))),
    })
"""

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class SameOriginValidator:
    """ASGI middleware: WebSocket handshakes from another origin get a 403."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            refusal = origin_refusal(scope)
            if refusal is not None:
                logger.info("refused a WebSocket handshake: %s", refusal)
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_refusal(scope: dict[str, Any]) -> str | None:
    """Why this handshake's origin is not allowed, or None when it is."""
    request = HandshakeRequest(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return "no Origin header"
    try:
        host = request.get_host()
    except DisallowedHost as exc:
        return str(exc)
    own = f"{'https' if request.is_secure() else 'http'}://{host}"
    if origin == own or _trusted(origin):
        return None
    return f"origin {origin[:200]!r} is not {own!r} nor in CSRF_TRUSTED_ORIGINS"


class HandshakeRequest(HttpRequest):
    """A WebSocket handshake as Django sees an HTTP request: its headers in META
    and its scheme from the ASGI scope, so that `get_host()` and `is_secure()`
    apply the same settings as for views."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._secure_scheme = scope.get("scheme") in ("wss", "https")
        for name, value in scope.get("headers", ()):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text
        server_name, server_port = scope.get("server") or ("", None)
        self.META["SERVER_NAME"] = server_name or ""
        self.META["SERVER_PORT"] = str(server_port or "")

    def _get_scheme(self) -> str:
        return "https" if self._secure_scheme else "http"


def _trusted(origin: str) -> bool:
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    for pattern in trusted:
        if "*" not in pattern:
            continue
        allowed = urlsplit(pattern)
        if allowed.scheme == parsed.scheme and is_same_domain(
            parsed.netloc, allowed.netloc.lstrip("*")
        ):
            return True
    return False
