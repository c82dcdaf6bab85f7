"""AetherConsumer tests through Channels' WebsocketCommunicator: open a connection
as a user with the groups the test's consumer joins on connect, read its frames."""

import json
from typing import Any

from channels.testing import WebsocketCommunicator

V1 = "aether.v1"
CONNECT_SECONDS = 10


async def open_ws(
    consumer: Any,
    user: Any,
    path: str = "/ws/",
    groups=(),
    subprotocols=(V1,),
) -> WebsocketCommunicator:
    """A connected communicator; the consumer reads its connect groups from
    `url_route` kwargs "groups"."""
    ws = WebsocketCommunicator(
        consumer.as_asgi(), path, subprotocols=list(subprotocols)
    )
    ws.scope["user"] = user
    ws.scope["url_route"] = {"kwargs": {"groups": list(groups)}}
    # Connecting joins the groups first (on Redis, with history): under load that
    # can take longer than the communicator's default of 1 s.
    connected, _ = await ws.connect(timeout=CONNECT_SECONDS)
    assert connected
    return ws


async def frame(ws: WebsocketCommunicator, within: float = 5) -> Any:
    """The next text frame, JSON-decoded when it is JSON."""
    text = await ws.receive_from(within)
    try:
        return json.loads(text)
    except ValueError:
        return text
