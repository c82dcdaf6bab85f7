"""WebSocket frames as a client writes and reads them, shared by the benchmark's
client and the tests' light client."""

import os
import struct
from collections.abc import Awaitable, Callable


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final WebSocket frame as a client sends it: masked (RFC 6455 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = int.from_bytes(mask * (size // 4 + 1), "big") >> (8 * (4 - size % 4))
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
    return head + mask + masked


async def read_frame(read: Callable[[int], Awaitable[bytes]]) -> tuple[int, int, bytes]:
    """(first byte, opcode, payload) of the next frame a server sent (unmasked);
    `read(n)` returns exactly n bytes."""
    first, second = await read(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await read(2), "big")
    elif size == 127:
        size = int.from_bytes(await read(8), "big")
    return first, first & 0x0F, await read(size)
