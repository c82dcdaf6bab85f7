"""WebSocket routes of the demo app (config/asgi.py serves them)."""

from django.urls import path

from .consumers import ChatConsumer, DashboardConsumer, RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    path("ws/chat/<room:room>/", ChatConsumer.as_asgi()),
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
