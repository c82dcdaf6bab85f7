from django.apps import AppConfig
from django.urls import register_converter


class DemoConfig(AppConfig):
    name = "project.demo"
    label = "demo"
    verbose_name = "aether_compat demo"

    def ready(self) -> None:
        from .rooms import RoomNameConverter

        # `<room:room>` in the HTTP and WebSocket routes; registered here because the
        # WebSocket routes are imported (by config/asgi.py) before any URLconf is.
        register_converter(RoomNameConverter, "room")
