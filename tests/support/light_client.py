"""A WebSocket client for the reliability tests, light enough that hundreds of them
in one process leave the CPU to the servers under test (the `websockets` library
costs the client more per frame than daphne spends sending it): a handshake with
any Origin and Cookie, masked frames out, frames parsed by hand in, and the choice
to stop reading, as a hung browser tab does."""

import asyncio
import base64
import contextlib
import json
import os
import struct
from collections.abc import Callable
from typing import Any

from testing_support.ws_frames import client_frame, read_frame

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(ConnectionError):
    """Raised when the server answers the WebSocket upgrade with another status."""

    def __init__(self, status: int, head: bytes) -> None:
        super().__init__(f"handshake refused with {status}: {head[:60]!r}")
        self.status = status


class LightClient:
    """One WebSocket connection: masked frames out, frames parsed by hand in.

    Text frames go to `on_text(bytes)` if given, else to the `texts` queue. A client
    can stop reading (`pause_reading`), after which the server's bytes pile up in
    the kernel and then in the server, as with a browser tab that hangs.
    """

    def __init__(self, on_text: Callable[[bytes], None] | None = None) -> None:
        self.texts: asyncio.Queue[bytes] = asyncio.Queue()
        self.on_text = on_text or self.texts.put_nowait
        self.binaries = 0
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(
        self,
        port: int,
        path: str = "/ws/realtime/",
        *,
        origin: str | None = "",
        cookie: str | None = None,
        protocol: str | None = None,
        within: float = 10,
    ) -> "LightClient":
        """Open the socket; `origin=""` sends this server's own origin, `None` none;
        `protocol` is the subprotocol to ask for (e.g. "aether.v1")."""
        async with asyncio.timeout(within):
            self._reader, self._writer = await asyncio.open_connection(
                "127.0.0.1", port
            )
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            ]
            if origin is not None:
                lines.append(f"Origin: {origin or f'http://127.0.0.1:{port}'}")
            if cookie:
                lines.append(f"Cookie: {cookie}")
            if protocol:
                lines.append(f"Sec-WebSocket-Protocol: {protocol}")
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            self._writer.transport.abort()
            raise HandshakeRefused(status, head)
        self._task = asyncio.ensure_future(self._read())
        return self

    # Sending

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    def send_bytes(self, data: bytes) -> None:
        self._send(BINARY, data)

    def send_command(self, action: str, group: str, message: str | None = None) -> None:
        frame: dict[str, Any] = {"action": action, "group": group}
        if message is not None:
            frame["message"] = message
        self.send_text(json.dumps(frame))

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("the connection is closed")
        self._writer.write(client_frame(opcode, payload))

    async def drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    # Receiving

    async def next_text(self, within: float = 5) -> bytes:
        async with asyncio.timeout(within):
            return await self.texts.get()

    async def next_json(self, within: float = 5) -> dict[str, Any]:
        return json.loads(await self.next_text(within))

    async def reply(self, within: float = 5) -> tuple[str, dict[str, Any]]:
        """The next `aether.*` reply (type, decoded payload), skipping other frames."""
        while True:
            frame = await self.next_json(within)
            # Presence frames (aether.presence_*) are events, not replies.
            if frame.get("type", "").startswith("aether.") and "payload" in frame:
                return frame["type"], json.loads(frame["payload"])

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def wait_closed(self, within: float = 10) -> int | None:
        """Wait for the connection to end; the close code the server sent, if any."""
        async with asyncio.timeout(within):
            await self.closed.wait()
        return self.close_code

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError):
                self._send(CLOSE, struct.pack("!H", 1000))
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.transport.abort()

    async def _read(self) -> None:
        read = self._reader.readexactly
        message = bytearray()
        kind = TEXT
        try:
            while True:
                await self._reading.wait()
                first, opcode, payload = await read_frame(read)
                if opcode == CLOSE:
                    if len(payload) >= 2:
                        self.close_code = int.from_bytes(payload[:2], "big")
                    return
                if opcode == PING:
                    self._send(PONG, payload)
                    continue
                if opcode in (TEXT, BINARY):
                    kind = opcode
                message += payload
                if first & 0x80:  # FIN: the message is complete
                    if kind == TEXT:
                        self.on_text(bytes(message))
                    else:
                        self.binaries += 1
                    message.clear()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed.set()


async def connect_many(
    port: int, count: int, path: str = "/ws/realtime/", **options: Any
) -> list[LightClient]:
    """`count` clients, opened a few at a time (a burst of 500 handshakes at once
    only measures the listen backlog)."""
    clients: list[LightClient] = []
    for start in range(0, count, 25):
        batch = [LightClient(**options) for _ in range(min(25, count - start))]
        await asyncio.gather(*(client.connect(port, path) for client in batch))
        clients += batch
    return clients
