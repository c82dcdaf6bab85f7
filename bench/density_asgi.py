"""The density benchmark's daphne app: one WebSocket route per contestant, each
connection in its own user group and one shared room, and a small HTTP control
route the bench uses to collect garbage and count tasks (`/density/gc`).

With DENSITY_TRACEMALLOC=1 the process traces allocations from import on;
`/density/trace?mark` takes the baseline snapshot and `/density/trace?diff` answers
the growth since then, grouped by file and line: where per-connection memory goes.
"""

import asyncio
import gc
import os
import resource
import tracemalloc
from typing import Any

if os.environ.get("DENSITY_TRACEMALLOC") == "1":
    tracemalloc.start(int(os.environ.get("DENSITY_TRACE_FRAMES", "1")))

from django.core.asgi import get_asgi_application

get_asgi_application()  # sets Django up before the consumers are imported

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from aether_compat.consumers import AetherConsumer  # noqa: E402

ROOM_OURS = "room:density"
ROOM_STOCK = "room.density"  # channels' own layer refuses ":" in group names
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))


class StockConsumer(AsyncWebsocketConsumer):
    """A Channels tutorial's consumer: its user group and the room on connect, every
    frame sent to the room, the room's events written to the socket."""

    async def connect(self) -> None:
        self.user_group = f"user.{self.scope['url_route']['kwargs']['uid']}"
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        await self.channel_layer.group_add(ROOM_STOCK, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.user_group, self.channel_name)
        await self.channel_layer.group_discard(ROOM_STOCK, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            ROOM_STOCK, {"type": "density.message", "text": text_data}
        )

    async def density_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class _AnyGroup:
    """The bench has no logins: every connection may be in its own user group."""

    def may_join(self, user: Any, group: str) -> bool:
        return True

    def may_send(self, user: Any, group: str) -> bool:
        return True


_ANY_GROUP = _AnyGroup()


class OurConsumer(AetherConsumer):
    """Its user group and the room, joined on connect; `send` broadcasts."""

    def get_groups(self) -> list[str]:
        return [f"user:{self.scope['url_route']['kwargs']['uid']}", ROOM_OURS]

    def get_policy(self) -> _AnyGroup:
        return _ANY_GROUP


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: accept, then read until the client leaves; no layer, no groups.
    What daphne, Twisted and autobahn cost per connection on their own."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return


_marked: list[tracemalloc.Snapshot] = []


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _trace(query: str) -> str:
    if not tracemalloc.is_tracing():
        return "tracemalloc is off: start daphne with DENSITY_TRACEMALLOC=1\n"
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    if query.startswith("mark"):
        _marked[:] = [snapshot]
        return "marked\n"
    stats = snapshot.compare_to(_marked[0], "lineno") if _marked else []
    top = int(query.split("=", 1)[1]) if "=" in query else 40
    total = sum(stat.size_diff for stat in stats)
    lines = [f"total growth {total} bytes"]
    lines += [
        f"{stat.size_diff:>11} B {stat.count_diff:>7} blocks  {stat.traceback[0]}"
        for stat in stats[:top]
    ]
    return "\n".join(lines) + "\n"


async def control(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/density/gc`: collect garbage, answer "rss_kib tasks"; `/density/trace`."""
    if scope["type"] != "http":
        return
    await receive()
    query = scope.get("query_string", b"").decode()
    if scope["path"] == "/density/trace":
        body = _trace(query)
    else:
        gc.collect()
        body = f"{_rss_kib()} {len(asyncio.all_tasks())}\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


application = ProtocolTypeRouter(
    {
        "http": control,
        "websocket": URLRouter(
            [
                path("ws/stock/<str:uid>/", StockConsumer.as_asgi()),
                path("ws/ours/<str:uid>/", OurConsumer.as_asgi()),
                path("ws/bare/<str:uid>/", bare),
            ]
        ),
    }
)
