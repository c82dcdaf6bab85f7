"""The in-process buffers of a Redis layer's own channels (`LocalChannels`): what the
pump puts, what `receive()` takes, the acks both leave for Redis' counts, expiry,
and waking readers parked on this event loop or on another thread's."""

import asyncio
import threading

import pytest

from aether_compat.layers.redis.local import LocalChannels, OpenItem
from testing_support.redis_process import wait_until
from tests.support.parking import local_waiters, until, waiting_channels

NOW = 1_000_000  # ms; deadlines are absolute
LATER = NOW + 60_000


def parked(local: LocalChannels, name: str, count: int = 1) -> None:
    """Block this thread until `count` readers of `name` wait (any loop)."""
    wait_until(lambda: local_waiters(local, name) >= count, 5, f"{name} parked")


# put, take, ack


def test_take_returns_messages_in_order_and_acks_their_tokens():
    local = LocalChannels()
    local.put(LATER, [("a", "tok-a")], b"one")
    local.put(LATER, [("a", "tok-a")], b"two")
    assert local.has_messages("a")
    assert local.take("a", NOW) == b"one"
    assert local.take("a", NOW) == b"two"
    assert local.take("a", NOW) is None
    assert not local.has_messages("a")
    assert local.acks == {"tok-a": 2}


def test_one_put_buffers_the_item_for_every_target():
    local = LocalChannels()
    local.put(LATER, [("a", "tok-a"), ("b", "tok-b")], b"fan-out")
    assert local.take("b", NOW) == b"fan-out"
    assert local.take("a", NOW) == b"fan-out"
    assert local.drain_acks() == {"tok-a": 1, "tok-b": 1}


def test_take_of_an_unknown_channel_is_none_and_acks_nothing():
    local = LocalChannels()
    assert local.take("nobody", NOW) is None
    assert local.acks == {}


def test_take_skips_and_acks_expired_messages():
    local = LocalChannels()
    local.put(NOW - 1, [("a", "tok")], b"expired")
    local.put(NOW, [("a", "tok")], b"due-now")  # a deadline of now is still on time
    assert local.take("a", NOW) == b"due-now"
    assert local.acks == {"tok": 2}
    local.put(NOW - 1, [("a", "tok")], b"expired")
    assert local.take("a", NOW) is None
    assert local.acks == {"tok": 3}
    assert not local.has_messages("a")


def test_acks_add_up_until_drained():
    local = LocalChannels()
    local.ack("t1")
    local.ack("t1", 4)
    local.ack("t2")
    assert local.drain_acks() == {"t1": 5, "t2": 1}
    assert local.drain_acks() == {}
    assert local.acks == {}


# expiry: next_deadline and sweep


def test_next_deadline_is_the_earliest_put():
    local = LocalChannels()
    assert local.next_deadline() is None
    local.put(NOW + 30, [("a", "t")], b"x")
    local.put(NOW + 10, [("b", "t")], b"y")
    local.put(NOW + 20, [("a", "t")], b"z")
    assert local.next_deadline() == NOW + 10


def test_sweep_drops_expired_messages_and_names_the_stopped_readers():
    """A channel is named when a message expired unread and its reader has not
    asked for `idle_ms`; one never read yet is not (its consumer may not have
    started), nor is a reader that asked recently."""
    local = LocalChannels()
    assert local.take("a", NOW - 10) is None  # a's reader asked, then stopped
    local.put(NOW + 10, [("a", "ta"), ("b", "tb"), ("c", "tc")], b"soon")
    local.put(NOW + 50, [("a", "ta")], b"later")
    assert local.take("b", NOW) == b"soon"  # b read its message in time
    local.drain_acks()
    assert local.sweep(NOW + 10, idle_ms=15) == set()  # nothing past its deadline
    assert local.sweep(NOW + 11, idle_ms=15) == {"a"}  # c was never read
    assert local.acks == {"ta": 1, "tc": 1}
    assert local.take("a", NOW + 11) == b"later"
    assert local.next_deadline() == NOW + 50


def test_sweep_does_not_name_a_channel_whose_reader_waits():
    """A reader parked on this loop is handed its message at once: nothing of its
    channel is left to expire, and the channel is not named; the message is acked
    only when the reader takes it."""
    local = LocalChannels()

    async def scenario():
        assert local.take("a", NOW - 10) is None  # a's reader asked long ago
        reader = asyncio.ensure_future(local.wait("a"))
        await until(lambda: local_waiters(local, "a") == 1, "reader parked")
        assert local.take("b", NOW - 10) is None  # b's reader asked, then stopped
        local.put(NOW + 10, [("a", "ta")], b"x")  # handed to a's reader
        local.put(NOW + 10, [("b", "tb")], b"y")  # b has none: buffered
        assert local.sweep(NOW + 11, idle_ms=5) == {"b"}
        assert local.drain_acks() == {"tb": 1}
        item = await asyncio.wait_for(reader, 2)
        assert local.taken("a", item, NOW) == b"x"
        assert local.drain_acks() == {"ta": 1}

    asyncio.run(scenario())


def test_a_handed_item_taken_after_its_deadline_is_acked_and_dropped():
    local = LocalChannels()

    async def scenario():
        reader = asyncio.ensure_future(local.wait("a"))
        await until(lambda: local_waiters(local, "a") == 1, "reader parked")
        local.put(NOW, [("a", "ta")], b"x")
        item = await asyncio.wait_for(reader, 2)
        assert local.taken("a", item, NOW + 1) is None
        assert local.drain_acks() == {"ta": 1}

    asyncio.run(scenario())


def test_clear_forgets_buffers_deadlines_and_acks():
    local = LocalChannels()
    local.put(LATER, [("a", "t")], b"x")
    local.ack("t")
    local.clear()
    assert not local.has_messages("a")
    assert local.next_deadline() is None
    assert local.acks == {}


# wait and waking


async def test_put_hands_its_item_to_a_reader_of_that_channel_only():
    local = LocalChannels()
    reader = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "reader parked")
    local.put(LATER, [("b", "t")], b"not for a")
    assert local_waiters(local, "a") == 1  # still pending: not woken
    local.put(LATER, [("a", "t")], b"for a")
    item = await asyncio.wait_for(reader, 2)
    assert not local.has_messages("a")  # handed over, not buffered
    assert local.acks == {}  # acked when taken
    assert local.taken("a", item, NOW) == b"for a"
    assert local.acks == {"t": 1}
    assert local_waiters(local, "a") == 0
    assert waiting_channels(local) == set()


async def test_a_reader_cancelled_before_it_ran_puts_its_item_back_first():
    """Cancelled between the hand-over and its first step, a reader loses nothing:
    the item goes back to the head of the buffer, before later ones, unacked, and
    the next reader is woken for it."""
    local = LocalChannels()
    first = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "first reader parked")
    local.put(LATER, [("a", "t")], b"one")  # handed to the first
    second = asyncio.ensure_future(local.wait("a"))  # woken at once: "two" is due
    local.put(LATER, [("a", "t")], b"two")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 2) is None  # look in the buffer
    assert local.acks == {}
    assert local.take("a", NOW) == b"one"
    assert local.take("a", NOW) == b"two"
    assert local.acks == {"t": 2}


async def test_wait_returns_at_once_when_a_message_is_buffered():
    local = LocalChannels()
    local.put(LATER, [("a", "t")], b"already here")
    await asyncio.wait_for(local.wait("a"), 2)


async def test_one_put_wakes_one_reader():
    local = LocalChannels()
    readers = [asyncio.ensure_future(local.wait("a")) for _ in range(2)]
    await until(lambda: local_waiters(local, "a") == 2, "readers parked")
    local.put(LATER, [("a", "t")], b"x")
    done, pending = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
    assert (len(done), len(pending)) == (1, 1)
    assert local_waiters(local, "a") == 1
    local.put(LATER, [("a", "t")], b"y")
    await asyncio.wait_for(pending.pop(), 2)


async def test_wake_all_wakes_every_reader_of_every_channel():
    local = LocalChannels()
    readers = [asyncio.ensure_future(local.wait(name)) for name in ("a", "a", "b")]
    await until(
        lambda: local_waiters(local, "a") == 2 and local_waiters(local, "b") == 1,
        "readers parked",
    )
    local.wake_all()
    await asyncio.wait_for(asyncio.gather(*readers), 2)
    assert local_waiters(local, "a") == local_waiters(local, "b") == 0


async def test_a_woken_reader_cancelled_before_it_ran_passes_the_wake_up_on():
    local = LocalChannels()
    first = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "first reader parked")
    second = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 2, "second reader parked")
    local.put(LATER, [("a", "t")], b"x")  # wakes the first (it has not run yet)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 2)
    assert local.take("a", NOW) == b"x"


async def test_a_cancelled_reader_leaves_no_waiter_behind():
    local = LocalChannels()
    reader = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "reader parked")
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert local_waiters(local, "a") == 0
    assert waiting_channels(local) == set()


# readers on another thread's event loop


class ThreadReader:
    """A reader of `name` parked in `local.wait` on its own thread's event loop."""

    def __init__(self, local: LocalChannels, name: str) -> None:
        self.woke_on: int | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._read(),))
        self.local, self.name = local, name

    async def _read(self) -> None:
        await asyncio.wait_for(self.local.wait(self.name), 5)
        self.woke_on = threading.get_ident()

    def start(self) -> "ThreadReader":
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_a_put_from_a_thread_without_a_loop_wakes_a_reader_on_another_loop():
    local = LocalChannels()
    reader = ThreadReader(local, "a").start()
    parked(local, "a")
    local.put(LATER, [("a", "t")], b"x")
    reader.join()
    assert reader.woke_on == reader.thread.ident


async def test_a_put_on_one_loop_wakes_a_reader_on_another_threads_loop():
    local = LocalChannels()
    reader = ThreadReader(local, "a").start()
    await until(lambda: local_waiters(local, "a") == 1, "reader parked", within=5)
    local.put(LATER, [("a", "t")], b"x")  # on this loop, for that one
    await asyncio.to_thread(reader.join)
    assert reader.woke_on == reader.thread.ident
    assert local.take("a", NOW) == b"x"


def test_a_reader_whose_loop_closed_is_skipped_for_the_next():
    local = LocalChannels()
    gone = asyncio.new_event_loop()
    stale = gone.create_task(local.wait("a"))
    gone.run_until_complete(until(lambda: local_waiters(local, "a") == 1, "parked"))
    gone.close()  # its reader can never run again

    async def live_reader():
        reader = asyncio.ensure_future(local.wait("a"))
        await until(lambda: local_waiters(local, "a") == 2, "live reader parked")
        local.put(LATER, [("a", "t")], b"x")
        await asyncio.wait_for(reader, 2)

    asyncio.run(live_reader())
    assert not stale.done()
    stale.get_coro().close()  # end the stale reader's coroutine (its loop is gone)


# open items: stored in Redis without a count per token (see local.py)


async def test_an_open_item_is_settled_once_every_handed_reader_took_it():
    local = LocalChannels()
    reader = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "reader parked")
    opened = OpenItem("7")
    local.put(LATER, [("a", "ta"), ("b", "tb")], b"x", opened=opened)
    # b had no reader: its copy is buffered and its count raised; a's is in hand
    assert local.acks == {"tb": -1}
    item = await asyncio.wait_for(reader, 2)
    assert local.taken("a", item, NOW) == b"x"
    assert local.drain_acks() == {"tb": -1, "*7": 1}  # settled, a acks nothing
    assert local.take("b", NOW) == b"x"
    assert local.drain_acks() == {"tb": 1}


async def test_an_open_item_put_back_by_a_cancelled_reader_is_counted():
    local = LocalChannels()
    reader = asyncio.ensure_future(local.wait("a"))
    await until(lambda: local_waiters(local, "a") == 1, "reader parked")
    local.put(LATER, [("a", "ta")], b"x", opened=OpenItem("8"))
    assert local.acks == {}  # in hand: Redis counts it as open
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert local.drain_acks() == {"ta": -1, "*8": 1}  # buffered now, counted
    assert local.take("a", NOW) == b"x"
    assert local.drain_acks() == {"ta": 1}


async def test_settle_now_counts_the_readers_still_in_hand():
    local = LocalChannels()
    readers = {n: asyncio.ensure_future(local.wait(n)) for n in ("a", "b")}
    await until(
        lambda: local_waiters(local, "a") == local_waiters(local, "b") == 1, "parked"
    )
    opened = OpenItem("9")
    local.put(LATER, [("a", "ta"), ("b", "tb")], b"x", opened=opened)
    local.settle_now(opened)
    assert local.drain_acks() == {"ta": -1, "tb": -1, "*9": 1}
    for name, reader in readers.items():
        item = await asyncio.wait_for(reader, 2)
        assert local.taken(name, item, NOW) == b"x"
    assert local.drain_acks() == {"ta": 1, "tb": 1}


def test_an_open_item_without_readers_settles_at_once():
    local = LocalChannels()
    local.put(LATER, [], b"x", opened=OpenItem("3"))  # all went to sessions
    assert local.drain_acks() == {"*3": 1}


def test_count_open_raises_every_token_and_settles_the_item():
    local = LocalChannels()
    local.count_open(["ta", "tb"], "5")
    assert local.drain_acks() == {"ta": -1, "tb": -1, "*5": 1}
