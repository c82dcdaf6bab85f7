"""A browser-like aether.v1 client in a process of its own, for half-open tests:

    python tests/support/v1_client.py WS_URL ORIGIN GROUP

It joins GROUP, prints "joined" once the server said so, then answers every
`aether.ping` with a pong (printing "pong") until it is killed or frozen."""

import asyncio
import json
import sys

import websockets


async def main(url: str, origin: str, group: str) -> None:
    async with websockets.connect(
        url,
        subprotocols=["aether.v1"],
        additional_headers={"Origin": origin},
        ping_interval=None,  # only the application's heartbeat, as in a browser
    ) as ws:
        await ws.send(json.dumps({"action": "join", "group": group, "ref": 1}))
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == "aether.joined":
                print("joined", flush=True)
            elif frame["type"] == "aether.ping":
                await ws.send('{"action": "pong"}')
                print("pong", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
