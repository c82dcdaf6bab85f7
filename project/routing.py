"""WebSocket routes of the demo project."""

from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from .consumers import ChatConsumer, DashboardConsumer, RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    re_path(r"^ws/chat/(?P<room>[A-Za-z0-9_-]{1,60})/$", ChatConsumer.as_asgi()),
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
    # Any other path is refused (403) instead of raising "No route found", which
    # would let any client write tracebacks into the server log.
    re_path(r"", WebsocketDenier.as_asgi()),
]
