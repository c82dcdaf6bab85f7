"""Idle WebSocket clients for the density benchmark, many per process: each is an
`asyncio.Protocol` (no task, no stream objects), so one client process holds
thousands of sockets cheaply. A worker process takes commands on a pipe:

    ("connect", port, paths, subprotocol) -> ("connected", opened, failures)
    ("arm", token)          -> ("armed",), then ("reached", count, last_ns, expected)
    ("close",)                            -> ("closed",)
"""

import asyncio
import base64
import contextlib
import os
import resource
import time
from multiprocessing.connection import Connection

from testing_support.ws_frames import client_frame

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
PARALLEL_OPENS = 16
ATTEMPTS = 4  # a handshake the server drops under load is tried again
REACH_TIMEOUT = 10.0
V1_PONG = client_frame(TEXT, b'{"action":"pong"}')


class Room:
    """What the clients of one worker saw of the armed broadcast."""

    def __init__(self) -> None:
        self.token: bytes | None = None
        self.count = 0
        self.last_ns = 0
        self.expected = 0
        self.all_reached: asyncio.Event = asyncio.Event()

    def arm(self, token: bytes, expected: int) -> None:
        self.token, self.count, self.last_ns, self.expected = token, 0, 0, expected
        self.all_reached.clear()

    def text(self, client: "IdleClient", payload: bytes) -> None:
        if self.token is not None and self.token in payload and not client.reached:
            client.reached = True
            self.count += 1
            self.last_ns = time.time_ns()
            if self.count >= self.expected:
                self.all_reached.set()


class IdleClient(asyncio.Protocol):
    """One connection: handshake, then frames parsed from `data_received`."""

    __slots__ = ("buffer", "opened", "reached", "room", "transport", "upgrade")

    def __init__(self, room: Room, upgrade: bytes) -> None:
        self.room = room
        self.upgrade = upgrade
        self.buffer = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reached = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.upgrade)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"lost before 101: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(buffer[:60]))
                return
            self.opened.set_result(None)
            buffer = buffer[end + 4 :]
        while len(buffer) >= 2:
            size, at = buffer[1] & 0x7F, 2
            if size == 126:
                size, at = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + size:
                break
            opcode, payload = buffer[0] & 0x0F, buffer[at : at + size]
            buffer = buffer[at + size :]
            if opcode == TEXT:
                if b'"aether.ping"' in payload:
                    self.transport.write(V1_PONG)
                else:
                    self.room.text(self, payload)
            elif opcode == PING:
                self.transport.write(client_frame(PONG, payload))
        self.buffer = buffer


def upgrade_request(port: int, path: str, subprotocol: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n{offer}\r\n"
    ).encode()


async def open_all(
    room: Room, port: int, paths: list[str], subprotocol: str | None
) -> tuple[list[IdleClient], int]:
    loop = asyncio.get_running_loop()
    clients: list[IdleClient] = []
    failures = 0
    gate = asyncio.Semaphore(PARALLEL_OPENS)

    async def one(path: str) -> None:
        nonlocal failures
        for _ in range(ATTEMPTS):
            async with gate:
                client = IdleClient(room, upgrade_request(port, path, subprotocol))
                try:
                    await loop.create_connection(lambda c=client: c, "127.0.0.1", port)
                    await asyncio.wait_for(client.opened, 60)
                except (TimeoutError, OSError):
                    if client.transport is not None:
                        client.transport.close()
                    continue
                clients.append(client)
                return
        failures += 1

    await asyncio.gather(*(one(path) for path in paths))
    return clients, failures


async def serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    room = Room()
    clients: list[IdleClient] = []
    commands: asyncio.Queue[tuple] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    while True:
        command = await commands.get()
        if command[0] == "connect":
            _, port, paths, subprotocol = command
            clients, failures = await open_all(room, port, paths, subprotocol)
            pipe.send(("connected", len(clients), failures))
        elif command[0] == "arm":
            room.arm(command[1], len(clients))
            for client in clients:
                client.reached = False
            pipe.send(("armed",))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(room.all_reached.wait(), REACH_TIMEOUT)
            pipe.send(("reached", room.count, room.last_ns, room.expected))
        elif command[0] == "close":
            for client in clients:
                if client.transport is not None:
                    client.transport.close()
            pipe.send(("closed",))
            return


def worker(pipe: Connection) -> None:
    """A client process's main: raise the descriptor limit, then serve commands."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(pipe))
