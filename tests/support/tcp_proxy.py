"""A TCP proxy for fault tests, between channel layers and a private redis-server.

On command it drops every connection at once, cuts connections in the middle of a
command (half of the next chunk a client sends is forwarded, then both sides are
closed), or stalls all traffic (bytes wait in the proxy, as on a frozen network)
until resumed. It runs its own event loop in a thread, so the test's loop, the
daphne processes behind it and the faults do not wait on one another.
"""

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

CHUNK = 64 * 1024
CONTROL_SECONDS = 5.0


@dataclass
class ProxyCounts:
    """What the proxy did, for the test's report."""

    accepted: int = 0
    dropped: int = 0
    cut: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Link:
    """One proxied connection: the client's socket and the upstream one."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.writers = (client, upstream)

    def close(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()  # a reset, as a dead network path gives


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`; see the module doc."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.counts = ProxyCounts()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task] = set()
        self._flowing: asyncio.Event | None = None
        self._cuts_pending = 0
        self._cuts_done = threading.Event()
        self._cuts_done.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # Life cycle (called from the test's thread)

    def start(self) -> "TcpProxy":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="tcp-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(CONTROL_SECONDS):
            raise TimeoutError("the TCP proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_SECONDS)
        self._loop.close()
        self._loop = None

    # Faults (called from the test's thread)

    def drop_all(self) -> int:
        """Reset every open connection now; returns how many were dropped."""
        return self._call(self._drop_all())

    def cut_next(self, count: int = 1) -> None:
        """Cut the next `count` client-to-Redis chunks halfway, closing their links."""
        self._call(self._add_cuts(count))

    def stall(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    def wait_for_cuts(self, seconds: float) -> bool:
        """Block until every cut asked for has happened; False after `seconds`."""
        return self._cuts_done.wait(seconds)

    # Inside the proxy's loop

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._listen())
        ready.set()
        loop.run_forever()

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.counts.accepted += 1
        task = asyncio.current_task()
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, link, upstream=True),
                self._pipe(up_reader, writer, link, upstream=False),
            )
        finally:
            self._links.discard(link)
            link.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await self._flowing.wait()
                if upstream and self._cuts_pending > 0 and len(chunk) > 1:
                    self._cuts_pending -= 1
                    self.counts.cut += 1
                    if not self._cuts_pending:
                        self._cuts_done.set()
                    writer.write(chunk[: len(chunk) // 2])
                    await writer.drain()
                    break
                writer.write(chunk)
                await writer.drain()
                if upstream:
                    self.counts.bytes_up += len(chunk)
                else:
                    self.counts.bytes_down += len(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            link.close()

    async def _drop_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.close()
        self.counts.dropped += len(links)
        return len(links)

    async def _add_cuts(self, count: int) -> None:
        self._cuts_done.clear()
        self._cuts_pending += count

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _shutdown(self) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=CONTROL_SECONDS)
        if self._server is not None:
            await self._server.wait_closed()

    def _call(self, coroutine):
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the TCP proxy is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(CONTROL_SECONDS)


@contextlib.contextmanager
def tcp_proxy(target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
