"""Session deliveries whose sender suspended: each is finished in a task of its
own on the session's loop, under the deadline, and the session's later deliveries
wait behind it in order. A hang, a raise (`CancelledError` too) or a timeout
becomes the outcome of that delivery, never an exception for anyone else."""

import asyncio
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from .errors import MemberUnreachable, SessionSendFailed

if TYPE_CHECKING:
    from .sessions import Session

Decode = Callable[[bytes], dict[str, Any]]


class Finisher:
    """Finishes suspended deliveries; keeps their tasks until they end."""

    def __init__(self, decode: Decode, timeout: float) -> None:
        self.decode = decode
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def take_over(
        self, session: "Session", steps: Generator[Any, Any, Any], step: Any
    ) -> asyncio.Future[Any]:
        """A sender suspended at its first step: finish it in a task of its own,
        and queue the session's next deliveries behind it."""
        waiter = session.loop.create_future()
        backlog = session.backlog = deque()
        task = session.loop.create_task(
            self._finish(session, backlog, resume(steps, step), waiter)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return waiter

    async def _finish(
        self,
        session: "Session",
        backlog: deque[tuple[bytes, asyncio.Future[Any]]],
        rest: Awaitable[Any],
        waiter: asyncio.Future[Any],
    ) -> None:
        """The rest of a delivery that suspended, then the ones queued behind it."""
        try:
            _resolve(waiter, await self._bounded(session, rest))
            while backlog:
                payload, waiter = backlog.popleft()
                delivery = _call(session.sender, self.decode(payload))
                _resolve(waiter, await self._bounded(session, delivery))
        finally:
            session.backlog = None
            gone = MemberUnreachable(session.channel, "its session's loop shut down")
            for _, waiter in backlog:
                _resolve(waiter, gone)

    async def _bounded(
        self, session: "Session", delivery: Awaitable[Any]
    ) -> BaseException | None:
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await delivery
        except (Exception, asyncio.CancelledError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task itself is being cancelled (its loop is ending)
            if deadline.expired():
                return timed_out(session.channel, self.timeout)
            return SessionSendFailed(session.channel, exc)
        return None


def timed_out(channel: str, timeout: float) -> SessionSendFailed:
    error = TimeoutError(f"the sender did not return within {timeout:g} s")
    return SessionSendFailed(channel, error)


@types.coroutine
def resume(coroutine: Generator[Any, Any, Any], step: Any) -> Generator[Any, Any, Any]:
    """Go on driving an awaitable whose first step already ran outside any task:
    `yield from` for one that has been started."""
    while True:
        try:
            sent = yield step
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:
            try:
                step = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                step = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


async def _call(
    sender: Callable[[dict[str, Any]], Awaitable[Any]], message: dict[str, Any]
) -> None:
    await sender(message)  # inside the deadline, even if calling it raises


def _resolve(waiter: asyncio.Future[Any], outcome: BaseException | None) -> None:
    if not waiter.done():
        waiter.set_result(outcome)
