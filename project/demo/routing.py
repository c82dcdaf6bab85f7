"""WebSocket routes of the demo app (config/asgi.py serves them)."""

from django.urls import path, re_path

from .consumers import ChatConsumer, DashboardConsumer, RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    re_path(r"^ws/chat/(?P<room>[A-Za-z0-9_-]{1,60})/$", ChatConsumer.as_asgi()),
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
