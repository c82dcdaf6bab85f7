"""The ASGI entry for any ASGI server: HTTP goes to Django (static files through
WhiteNoise, see settings.py), WebSockets to the demo app's consumers, and any other
WebSocket path is refused."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.urls import re_path  # noqa: E402

from aether_compat.origins import SameOriginValidator  # noqa: E402
from project.demo.routing import websocket_urlpatterns  # noqa: E402

websocket_routes = URLRouter(
    [
        *websocket_urlpatterns,
        # Any other path is refused (403) instead of raising "No route found", which
        # would let any client write tracebacks into the server log.
        re_path(r"", WebsocketDenier.as_asgi()),
    ]
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(websocket_routes)),
    }
)
