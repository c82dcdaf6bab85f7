"""How group messages reach one WebSocket: on aether_compat layers the connection is
a registered session and each `aether.message` is written straight to the socket by
the broadcaster's task (no per-message dispatch, no thread-pool hop); on stock
layers they come through Channels' dispatch. The broadcaster never waits on the
client: a frame the server cannot take at once waits in this connection's
`OutboundBuffer`. A message is refused, and counted as a failure, when the socket
is not open or its client stopped reading (`outbound.py`); a client that stays
behind is closed with 4013, checked on a timer as well as on each message."""

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from . import metrics
from .errors import ChannelFull, InvalidMessage, MemberUnreachable
from .layers import is_aether_layer
from .limits import CLOSE_SLOW_CONSUMER
from .messages import AETHER_MESSAGE
from .outbound import OutboundGauge, OutboundLimit
from .outbound_buffer import OutboundBuffer
from .presence import PRESENCE_DIFF, PRESENCE_STATE
from .protocol import utf8_size

logger = logging.getLogger("aether_compat.consumers")

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"
PRESENCE_EVENTS = frozenset((PRESENCE_STATE, PRESENCE_DIFF))


class SocketDelivery(AsyncWebsocketConsumer):
    """The delivery half of `AetherConsumer`; see the module docstring."""

    state = CONNECTING
    outbound: OutboundLimit
    hold_back: Callable[[dict[str, Any]], bool] | None = None
    """Set while groups resume (`resume.py`): takes a live message with an offset
    and returns True when it keeps it back or the replay had it."""

    def get_outbound_gauge(self, send: Any) -> OutboundGauge:
        """What tells how far behind the client is (see `outbound.py`)."""
        return OutboundGauge.for_send(send, self._buffer)

    def start_task(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coroutine` while the connection lives; it is cancelled when it ends."""
        task = asyncio.ensure_future(coroutine)
        if self._tasks is None:  # most connections never start one
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shut(self, code: int) -> None:
        """Close the socket from the server side with `code`."""
        if self.state != OPEN:
            return
        self.state = CLOSED
        logger.debug("closing WebSocket %s with code %s", self.channel_name, code)
        # The close frame goes behind the frames already accepted (at most
        # `outbound_limit_bytes`), so a slow client still gets what was counted as
        # sent to it, then the code. The groups are left already; a client that
        # never reads again holds only that queue until TCP gives up on it.
        try:
            await self._buffer.drained()
            await self.close(code)
        except (OSError, RuntimeError) as exc:
            # The server closed it first (uvicorn's keepalive does, with 1011).
            logger.debug("WebSocket %s was closed already: %r", self.channel_name, exc)

    async def send(
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """The consumer's own frames (replies, pushes, pings) take the same ordered
        path as deliveries, so none overtakes a message accepted before it; the
        caller waits until its frame is handed to the server. Once the socket is
        closed (or closing under it), such a frame has no one to go to: it is
        dropped with a DEBUG line, never an error in the log."""
        if self.state == CLOSED:
            logger.debug("not sent to %s: its WebSocket is closed", self.channel_name)
            return
        if text_data is None and bytes_data is None:
            raise ValueError("You must pass one of bytes_data or text_data")
        message, size = _frame(text_data, bytes_data)
        try:
            self._buffer.write(message, size)
        except Exception as exc:  # the server's send: the client went away just now
            logger.debug("not sent to %s: %r", self.channel_name, exc)
            return
        await self._buffer.drained()
        if close:
            await self.close(close)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Group text needs no database: skip the thread hop that closes stale
        # connections before every other handler.
        kind = message.get("type")
        if kind == AETHER_MESSAGE:
            await self.aether_message(message)
        elif kind in PRESENCE_EVENTS and hasattr(self, kind.replace(".", "_")):
            await getattr(self, kind.replace(".", "_"))(message)
        else:
            await super().dispatch(message)

    async def aether_message(self, event: dict[str, Any]) -> None:
        """A facade broadcast that came through dispatch (stock layers), where a
        refusal can only be logged: the layer already counted it as sent."""
        try:
            if self.state != OPEN:
                raise self._not_open()
            await self._write(event)
        except MemberUnreachable as refusal:
            logger.warning("dropped a message for %s: %s", self.channel_name, refusal)

    async def _deliver(self, event: dict[str, Any]) -> None:
        """The session sender: runs in the broadcaster's task; raising makes the
        delivery a counted failure in its `SendResult`."""
        if event.get("type") != AETHER_MESSAGE:
            try:
                self._inbox.put_nowait(event)
            except asyncio.QueueFull:
                raise ChannelFull(self.channel_name, self._inbox.maxsize) from None
            return
        if self.state != OPEN:
            # A group joined on connect holds its messages while it resumes.
            hold = self.hold_back
            if hold is None or "offset" not in event or not hold(event):
                raise self._not_open()
            return
        await self._write(event)

    def frame_text(self, event: dict[str, Any], text: str) -> str:
        """The text frame a text `aether.message` event becomes on this socket."""
        return text

    async def _write(self, event: dict[str, Any]) -> None:
        if (hold := self.hold_back) is not None and "offset" in event and hold(event):
            return
        if (text := event.get("text")) is not None:
            self._send_frame(text=self.frame_text(event, text))
        elif (data := event.get("bytes")) is not None:
            self._send_frame(bytes_=data)
        else:
            raise InvalidMessage(f"an {AETHER_MESSAGE!r} event needs text or bytes")

    def write_event_now(self, event: dict[str, Any]) -> None:
        """Write a group message on the ordered path at once, past the outbound
        limit: for replays, which `history_size` bounds."""
        if (text := event.get("text")) is not None:
            self._write_ordered(*_frame(self.frame_text(event, text), None))
        elif (data := event.get("bytes")) is not None:
            self._write_ordered(*_frame(None, data))

    def write_text_now(self, text: str) -> None:
        """Write one frame of the consumer's own on the ordered path at once."""
        self._write_ordered(*_frame(text, None))

    async def drained(self) -> None:
        """Wait until every frame written so far was handed to the server."""
        await self._buffer.drained()

    def _write_ordered(self, message: dict[str, Any], size: int) -> None:
        if self.state == CLOSED:
            return
        try:
            self._buffer.write(message, size)
        except Exception as exc:  # the client went away just now
            logger.debug("not sent to %s: %r", self.channel_name, exc)

    # How bytes reach the server

    def _send_frame(self, text: str | None = None, bytes_: bytes | None = None) -> None:
        """Give one frame to the server without waiting on the client: written now,
        or queued behind a blocked write; refused (`MemberUnreachable`) when the
        client has `outbound_limit_bytes` waiting already."""
        message, size = _frame(text, bytes_)
        backlog = self.outbound.admit(size)
        if backlog is not None:
            metrics.socket_refused()
            raise self._not_reading(backlog)
        self._buffer.write(message, size)
        metrics.socket_frame(size)

    def _not_open(self) -> MemberUnreachable:
        return MemberUnreachable(self.channel_name, "its WebSocket is not open")

    def _not_reading(self, backlog: int) -> MemberUnreachable:
        if self.outbound.overdue():
            self._close_soon(CLOSE_SLOW_CONSUMER)
        else:
            self._watch_outbound()
        return MemberUnreachable(
            self.channel_name,
            f"its client is not reading: {backlog} bytes wait to be sent "
            f"(limit {self.outbound.limit_bytes})",
        )

    def _watch_outbound(self) -> None:
        """Check again when the client would become overdue, so that a client that
        stays behind is closed even when no further message comes to check it."""
        if self._watch is not None or self.state != OPEN:
            return
        due = self.outbound.due_in()
        if due is not None:
            loop = asyncio.get_running_loop()
            self._watch = loop.call_later(max(due, 0.0), self._check_outbound)

    def _check_outbound(self) -> None:
        self._watch = None
        if self.state != OPEN:
            return
        self.outbound.recheck()
        if self.outbound.overdue():
            self._close_soon(CLOSE_SLOW_CONSUMER)
        else:
            self._watch_outbound()

    def _close_soon(self, code: int) -> None:
        # The sender runs inside someone else's broadcast: close from a task of our
        # own, so that leaving groups does not happen in the middle of it.
        if self.state == OPEN and not self._closing:
            self._closing = True
            self.start_task(self.shut(code))

    async def _attach_channel(self, send: Any) -> Any:
        """Register a session where the layer has them; return what the dispatch
        loop should read for layer events."""
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._closing = False
        self._watch: asyncio.TimerHandle | None = None
        self._buffer = OutboundBuffer(send, self.start_task, self._watch_outbound)
        self._gauge = self.get_outbound_gauge(send)
        layer = self.channel_layer
        self._session = is_aether_layer(layer)
        if not self._session:
            return functools.partial(layer.receive, self.channel_name)
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(
            maxsize=getattr(layer, "capacity", 100)
        )
        await layer.register_session(self.channel_name, self._deliver)
        return self._inbox.get

    def _cancel_tasks(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for task in list(self._tasks or ()):
            task.cancel()

    async def _detach_channel(self) -> None:
        if self._session:
            await self.channel_layer.unregister_session(self.channel_name)


def _frame(text: str | None, data: bytes | None) -> tuple[dict[str, Any], int]:
    """The ASGI `websocket.send` message for text (else bytes), and its size on
    the wire, which the outbound limit counts."""
    if text is not None:
        return {"type": "websocket.send", "text": text}, utf8_size(text)
    return {"type": "websocket.send", "bytes": data}, len(data or b"")
