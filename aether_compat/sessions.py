"""This process's registered sessions, and isolated delivery to them.

A registered session receives its channel's messages by a call to its async sender
instead of through a queue and `receive()`. One session's trouble stays its own:

- each sender runs on the event loop it was registered on, whatever thread or loop
  the message comes from;
- a sender that returns without suspending (the common case: a socket write) is
  finished at once, with no task; one that suspends finishes in a task of its own,
  and later messages for that session wait behind it, in order, up to its capacity;
- each delivery has a deadline (`delivery_timeout`): a sender that hangs, raises
  (`CancelledError` too) or is slow is a counted failure naming its channel, and a
  caller never waits for one session longer than that.
"""

import asyncio
import concurrent.futures
import contextlib
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from . import metrics
from .errors import ChannelFull, MemberUnreachable, SessionSendFailed
from .results import SendResult
from .session_finish import Decode, Finisher, timed_out

Sender = Callable[[dict[str, Any]], Awaitable[Any]]
Outcome = BaseException | asyncio.Future[BaseException | None] | None
"""What starting a delivery gives back: `None` (taken), the failure, or a future
on the caller's loop that resolves to one of those."""
_DONE = object()  # next(steps, _DONE): the first step finished the sender. Unlike
# send(), next() reports a plain return without raising StopIteration: it costs
# about what an `await` does.


class Session:
    """One registered sender, the loop it lives on, and its deliveries in flight."""

    __slots__ = ("backlog", "capacity", "channel", "loop", "sender")

    def __init__(
        self,
        channel: str,
        sender: Sender,
        loop: asyncio.AbstractEventLoop,
        capacity: int,
    ) -> None:
        self.channel = channel
        self.sender = sender
        self.loop = loop
        self.capacity = capacity
        # Deliveries waiting behind one that suspended; None while none is running.
        self.backlog: deque[tuple[bytes, asyncio.Future[Any]]] | None = None


class Started:
    """What `start_many` did: deliveries done, failed, and still running."""

    __slots__ = ("elsewhere", "errors", "index", "pending", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.errors: list[BaseException] = []
        self.pending: dict[asyncio.Future[Any], Session] = {}
        self.elsewhere: list[Session] = []  # on another loop, or busy: one by one
        self.index = 0  # the session the inline driver is at

    def add(self, session: Session, outcome: Outcome) -> None:
        if outcome is None:
            self.sent += 1
        elif isinstance(outcome, BaseException):
            self.errors.append(outcome)
        else:
            self.pending[outcome] = session


class SessionTable:
    """Maps channel names to their sessions in this process, and delivers to them."""

    __slots__ = ("_finisher", "_sessions", "decode", "get", "timeout")

    def __init__(self, decode: Decode, timeout: float) -> None:
        self._sessions: dict[str, Session] = {}
        # The session of a channel, or None: the dict's own get, called per member.
        self.get: Callable[[str], Session | None] = self._sessions.get
        self._finisher = Finisher(decode, timeout)
        self.decode = decode
        self.timeout = timeout

    def register(self, channel: str, sender: Sender, capacity: int) -> None:
        """Register `sender` for `channel` on the running event loop."""
        if not callable(sender):
            raise TypeError(f"session sender must be an async callable, got {sender!r}")
        loop = asyncio.get_running_loop()
        self._sessions[channel] = Session(channel, sender, loop, capacity)

    def unregister(self, channel: str) -> None:
        self._sessions.pop(channel, None)

    def __contains__(self, channel: str) -> bool:
        return channel in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    # Delivery

    async def send(self, session: Session, payload: bytes) -> None:
        """Deliver to one session; raise its failure (`SessionSendFailed`, or
        `MemberUnreachable`/`ChannelFull` when it cannot be reached in time)."""
        result = await self.deliver([session], payload)
        if result.errors:
            raise result.errors[0]

    async def deliver(self, sessions: list[Session], payload: bytes) -> SendResult:
        """Deliver to each session and count the outcomes; returns within the
        deadline however the senders behave."""
        started = self.start_many(sessions, payload, asyncio.get_running_loop())
        sent, errors, pending = started.sent, started.errors, started.pending
        if pending:
            done, late = await asyncio.wait(pending, timeout=self.timeout)
            for future in done:
                if (failure := future.result()) is None:
                    sent += 1
                else:
                    errors.append(failure)
            if late:
                metrics.deadline_missed(len(late))
                errors += [
                    timed_out(pending[future].channel, self.timeout) for future in late
                ]
        return SendResult.of(sent, errors)

    def start_many(
        self,
        sessions: list[Session],
        payload: bytes,
        running: asyncio.AbstractEventLoop,
    ) -> "Started":
        """Start a delivery to each session; the ones still running are `pending`.

        The senders living on `running` with nothing in flight are driven by one
        generator whose `yield from` costs what an `await` does: when one of them
        suspends, that generator goes on in a task of its own (finishing only that
        sender) and a new one takes the rest."""
        started = Started()
        first = 0
        while first < len(sessions):
            stop = [False]
            skipped = len(started.elsewhere)
            driver = self._inline(sessions, first, payload, running, started, stop)
            try:
                step = next(driver, _DONE)
            except (Exception, asyncio.CancelledError) as exc:
                session = sessions[started.index]
                started.errors.append(SessionSendFailed(session.channel, exc))
            else:
                if step is _DONE:
                    started.index = len(sessions)
                else:
                    stop[0] = True  # resumed in its task, it ends after this sender
                    session = sessions[started.index]
                    started.pending[self._finisher.take_over(session, driver, step)] = (
                        session
                    )
            # The driver counts nothing itself: all it passed returned normally.
            skipped = len(started.elsewhere) - skipped
            started.sent += started.index - first - skipped
            first = started.index + 1
        for session in started.elsewhere:
            started.add(session, self.start(session, payload, running))
        return started

    @types.coroutine
    def _inline(
        self,
        sessions: list[Session],
        first: int,
        payload: bytes,
        running: asyncio.AbstractEventLoop,
        started: "Started",
        stop: list[bool],
    ) -> Generator[Any, Any, None]:
        decode = self.decode
        elsewhere = started.elsewhere
        for index in range(first, len(sessions)):
            session = sessions[index]
            if session.loop is not running or session.backlog is not None:
                elsewhere.append(session)
                continue
            started.index = index
            yield from session.sender(decode(payload))
            if stop[0]:
                return

    def start(
        self, session: Session, payload: bytes, running: asyncio.AbstractEventLoop
    ) -> Outcome:
        """Start one delivery from the `running` loop, on the session's own loop.
        A session registered from a loop that has ended since (sync code, through
        `async_to_sync`) has no home left: it adopts the caller's loop."""
        if session.loop is running:
            return self._start_here(session, payload)
        if session.loop.is_closed() and session.backlog is None:
            session.loop = running
            return self._start_here(session, payload)
        handover: concurrent.futures.Future[BaseException | None]
        handover = concurrent.futures.Future()
        try:
            session.loop.call_soon_threadsafe(
                self._start_for, session, payload, handover
            )
        except RuntimeError:  # closed just now, with deliveries in flight
            return MemberUnreachable(session.channel, "its session's loop is closed")
        return asyncio.wrap_future(handover, loop=running)

    def _start_for(
        self,
        session: Session,
        payload: bytes,
        handover: concurrent.futures.Future[BaseException | None],
    ) -> None:
        """On the session's loop: start, and hand the outcome to the caller's loop."""
        outcome = self._start_here(session, payload)
        if isinstance(outcome, asyncio.Future):
            outcome.add_done_callback(lambda done: _settle(handover, done.result()))
        else:
            _settle(handover, outcome)

    def _start_here(self, session: Session, payload: bytes) -> Outcome:
        backlog = session.backlog
        if backlog is not None:  # one is in flight: keep the order
            if len(backlog) >= session.capacity:
                return ChannelFull(session.channel, session.capacity)
            waiter = session.loop.create_future()
            backlog.append((payload, waiter))
            return waiter
        try:
            steps = session.sender(self.decode(payload)).__await__()
            step = next(steps, _DONE)
        except (Exception, asyncio.CancelledError) as exc:
            return SessionSendFailed(session.channel, exc)
        if step is _DONE:
            return None
        return self._finisher.take_over(session, steps, step)


def _settle(
    handover: concurrent.futures.Future[BaseException | None],
    outcome: BaseException | None,
) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        handover.set_result(outcome)  # unless the caller stopped waiting
