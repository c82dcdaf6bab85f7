"""A clock for the in-memory layer's timers: a daemon thread with an event loop of
its own, started on first use.

Why a thread: the layer is called from many event loops, and some of them are
short-lived (`async_to_sync` runs each sync call on a loop that ends with it). A
timer set on the caller's loop would die with that loop, and a grace period or a
diff batch must end whatever happens to the loop that started it. The clock's loop
lives as long as the layer (until `close()`); a later use starts a new one.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class Clock:
    """Runs callbacks after a delay, and coroutines they start, on its own loop."""

    __slots__ = ("_loop", "_name", "_start", "_tasks", "_thread")

    def __init__(self, name: str) -> None:
        self._name = name
        self._start = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def call_later(
        self, delay: float, callback: Callable[..., Any], *args: Any
    ) -> None:
        """Call `callback(*args)` on the clock's thread in `delay` seconds; callable
        from any thread. Callbacks take the layer's lock themselves."""
        loop = self._running()
        # A RuntimeError: close() closed it just now, and the layer is closing.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.call_later, delay, callback, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run `coroutine` as a task of the clock (call on the clock's thread); the
        clock holds it until it ends, and cancels it on `close()`."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Stop the thread; timers not yet due are dropped."""
        with self._start:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout=5)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._start:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._run, args=(loop,), name=self._name, daemon=True
                )
                self._thread.start()
                self._loop = loop
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()
