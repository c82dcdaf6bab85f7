"""The benchmark's WebSocket routes: the same room served by a stock Channels
consumer (`group_send` + a handler) and by `AetherConsumer` (the `send` command)."""

from django.core.asgi import get_asgi_application

get_asgi_application()  # sets Django up before the consumers are imported

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from aether_compat.consumers import AetherConsumer  # noqa: E402

STOCK_GROUP = "bench"


class StockConsumer(AsyncWebsocketConsumer):
    """What a Channels tutorial writes: every frame is sent to the group, and the
    group's events go to the socket through a handler."""

    groups = [STOCK_GROUP]

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            STOCK_GROUP, {"type": "bench.message", "text": text_data}
        )

    async def bench_message(self, event):
        await self.send(text_data=event["text"])


class OurConsumer(AetherConsumer):
    groups = ["room:bench"]


application = URLRouter(
    [
        path("ws/stock/", StockConsumer.as_asgi()),
        path("ws/ours/", OurConsumer.as_asgi()),
    ]
)
