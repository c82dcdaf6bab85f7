"""WebSocket clients of the `websockets` library against a demo server, for the
end-to-end tests: open a socket as a page of the site would, send a command, read
the next message or reply, and wait for the server to close."""

import asyncio
import json

import websockets
from websockets.exceptions import ConnectionClosed

from aether_compat import ChannelMessage

WAIT = 5


async def open_ws(
    server, browser=None, path="/ws/realtime/", *, protocol=None, **headers
):
    """A client that buffers what it has not read yet (so sockets a test keeps open
    but does not read still close promptly); `protocol="aether.v1"` asks for the
    versioned protocol (legacy when None)."""
    base = browser.ws_headers() if browser else {"Origin": server.url}
    return await websockets.connect(
        server.ws_url + path,
        additional_headers={**base, **headers},
        subprotocols=[protocol] if protocol else None,
        open_timeout=WAIT,
        max_queue=None,
    )


async def command(ws, action, group, message=None):
    frame = {"action": action, "group": group}
    if message is not None:
        frame["message"] = message
    await ws.send(json.dumps(frame))


async def next_message(ws):
    async with asyncio.timeout(WAIT):
        return ChannelMessage.from_json(await ws.recv())


async def reply(ws):
    message = await next_message(ws)
    assert message.type.startswith("aether."), message
    return message.type, json.loads(message.payload)


async def joined_group(ws):
    """The group of the next reply, which must be `aether.joined` (its position
    fields depend on the group's history settings)."""
    kind, payload = await reply(ws)
    assert kind == "aether.joined", (kind, payload)
    return payload["group"]


async def close_code(ws):
    """Wait for the server to close `ws`; return the close code it sent."""
    async with asyncio.timeout(WAIT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
