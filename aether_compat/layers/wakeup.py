"""Waking a receiver parked on a future, from its own event loop or from another
thread's: Channels layers are called through `async_to_sync` from fresh loops, so a
sender is not always on the loop its receiver waits on."""

import asyncio


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if any. Callers ask once per send or
    group_send, not per member: the lookup costs a getpid() system call."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def wake_one(
    waiters: list[asyncio.Future[None]], running: asyncio.AbstractEventLoop | None
) -> None:
    """Wake the first receiver still waiting, on whichever event loop it runs;
    `running` is the caller's loop, where a waiter can be woken directly."""
    while waiters:
        waiter = waiters.pop(0)
        if waiter.done():
            continue
        loop = waiter.get_loop()
        if loop is running:
            waiter.set_result(None)
            return
        try:
            loop.call_soon_threadsafe(_resolve, waiter, waiters)
        except RuntimeError:  # that loop is closed: its receiver is gone
            continue
        return


def _resolve(waiter: asyncio.Future[None], waiters: list[asyncio.Future[None]]) -> None:
    if not waiter.done():
        waiter.set_result(None)
    else:  # cancelled on its way: the wake-up goes to the next receiver
        wake_one(waiters, running_loop())
