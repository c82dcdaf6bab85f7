"""WebSocket routes of the demo project."""

websocket_urlpatterns: list = []
