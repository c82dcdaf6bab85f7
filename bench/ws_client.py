"""A minimal WebSocket client for load: a handshake, masked text frames out, frames
in parsed by hand. The `websockets` library costs the client more CPU per frame than
daphne spends sending it; on two cores that would measure the client, not the server.
"""

import asyncio
import base64
import os
from collections.abc import Callable

from testing_support.ws_frames import client_frame, read_frame

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class RawClient:
    """One connection; `on_text(bytes)` is called for every text frame."""

    def __init__(self, on_text: Callable[[bytes], None]) -> None:
        self.on_text = on_text
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int, path: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:40]!r}")
        self.task = asyncio.ensure_future(self._read())

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        self.writer.write(client_frame(opcode, payload))

    async def _read(self) -> None:
        read = self.reader.readexactly
        try:
            while True:
                _, opcode, payload = await read_frame(read)
                if opcode == TEXT:
                    self.on_text(payload)
                elif opcode == PING:
                    self._send(PONG, payload)
                elif opcode == CLOSE:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()
