"""Offset order for the members of one process, per history group.

On one server a group's messages reach a process's inbox in offset order, but the
sender's own sessions are handed their copy directly, and with several hosts or a
Cluster two senders' deliveries to one inbox can cross. So each member (token) of
a history group knows the next offset it expects:

- the expected offset, or a member whose next offset is unknown: handed on now;
- an older offset: a duplicate (or a message already filled in), dropped; so is
  a message for a member that left the group since it was sent (a resume must
  not get a message twice: once live after its leave, once replayed);
- a later one: held, and after `HOLD_SECONDS` without its predecessors the gap is
  filled from the group's history (a sender that died between assigning the offset
  and delivering stalls nobody); offsets history no longer has are skipped.

A member that joins is held until its join has read the group's offset (it then
expects the next one); a new epoch releases what is held and starts again.
Hand-offs start under the lock, so a member's messages start in order whatever the
thread; a session's own queue keeps that order (sessions.py).
"""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .position import Stamp
from .util import logger

HOLD_SECONDS = 0.3
LEFT_SECONDS = 120.0  # longer than a message may wait in an inbox (expiry)
JOINING = -1  # a member's next offset while its join is under way

Hand = Callable[[int, list[str], bytes, bool], Any]
"""(deadline ms, tokens, payload, counted) -> what handing it on started."""
Entry = tuple[int, frozenset[str], bytes]
"""A history entry for a fill: offset, excluded tokens, payload with position."""
Fetch = Callable[[str, str, int, int], Awaitable[list[Entry] | None]]
"""(group, epoch, first, last offset) -> the entries still in history, or None
when the epoch changed meanwhile."""


@dataclass
class _Held:
    deadline: int
    payload: bytes
    counted: bool
    tokens: set[str] = field(default_factory=set)


@dataclass
class _Group:
    epoch: str = ""
    next: dict[str, int] = field(default_factory=dict)
    joined: dict[str, int] = field(default_factory=dict)  # token -> offset at join
    held: dict[int, _Held] = field(default_factory=dict)
    filling: bool = False


class Sequencer:
    """Per-member offset order for one layer instance's members of history groups."""

    def __init__(
        self,
        hand: Hand,
        ack: Callable[[list[str]], None],
        fetch: Fetch,
        schedule: Callable[[float, Callable[[], None]], None],
        settle: Callable[[Any], None],
    ) -> None:
        self._hand = hand
        self._settle = settle  # logs and counts what a later hand-off started
        self._schedule = schedule
        self._ack = ack
        self._fetch = fetch
        self._groups: dict[str, _Group] = {}
        self._lock = threading.RLock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._left: dict[tuple[str, str], float] = {}  # (group, token) -> when
        self.holds = 0  # messages held for an earlier one (stats)
        self.fills = 0  # gaps filled from history (stats)

    def arrive(
        self,
        stamp: Stamp,
        tokens: list[str],
        payload: bytes,
        deadline: int,
        counted: bool = True,
        hand: Hand | None = None,
    ) -> Any:
        """Hand `payload` (offset `stamp.offset`) to the `tokens` whose turn it is,
        hold it for those still missing an earlier one; returns what handing it on
        started (None if nobody got it now). `hand` replaces the usual hand-off
        for the ones handed on now (the sender knows its sessions already)."""
        offset = stamp.offset
        with self._lock:
            group = self._group(stamp.group, stamp.epoch)
            now, dropped, held = [], [], False
            expect = group.next
            for token in tokens:
                n = expect.get(token)
                if n is None and (stamp.group, token) not in self._left:
                    n = 0  # a member joined elsewhere (or before we knew)
                if n == offset or n == 0:
                    now.append(token)
                    expect[token] = offset + 1
                elif n is not None and (0 < n < offset or n == JOINING):
                    entry = group.held.get(offset)
                    if entry is None:
                        entry = group.held[offset] = _Held(deadline, payload, counted)
                    entry.tokens.add(token)
                    held = True
                else:  # had it already, or left the group (a message in flight)
                    dropped.append(token)
            if held:
                self.holds += 1
            if dropped and counted:
                self._ack(dropped)
            started = None
            if now:
                started = (hand or self._hand)(deadline, now, payload, counted)
            if now and group.held:
                self._release(group, now)
            if held:
                self._arm(stamp.group, group)
            return started

    def joining(self, group: str, token: str) -> None:
        """Hold `token`'s messages of `group` until `joined` says where it starts."""
        with self._lock:
            self._left.pop((group, token), None)
            self._groups.setdefault(group, _Group()).next[token] = JOINING

    def joined(
        self, group: str, token: str, epoch: str | None, offset: int, last: Any = None
    ) -> None:
        """The join of `token` read `offset` (None epoch: it failed). `last`, if
        given, is (deadline, payload) of the newest message, handed on first."""
        with self._lock:
            state = self._groups.get(group)
            if state is None or state.next.get(token) != JOINING:
                return
            self._drop_held(state, token, None if epoch is None else offset)
            if epoch is None:
                state.next[token] = 0
            else:
                if state.epoch != epoch:
                    self._new_epoch(group, state, epoch)
                if last is not None:
                    self._handed(last[0], [token], last[1], False)
                state.next[token] = offset + 1
                state.joined[token] = offset
            self._release(state, [token])
            if state.held:
                self._arm(group, state)

    def forget(self, group: str, token: str) -> None:
        """`token` left `group`: messages still in flight to it are dropped."""
        with self._lock:
            self._note_left(group, token)
            state = self._groups.get(group)
            if state is None:
                return
            state.next.pop(token, None)
            state.joined.pop(token, None)
            self._drop_held(state, token, None)
            if not state.next and not state.held:
                del self._groups[group]

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._left.clear()

    # Internals, with the lock held

    def _note_left(self, group: str, token: str) -> None:
        """Remember a leave for as long as a message sent before it may arrive
        (LEFT_SECONDS), so that it is not taken for a member we never knew."""
        now = time.monotonic()
        if len(self._left) >= 4096:
            cutoff = now - LEFT_SECONDS
            self._left = {k: at for k, at in self._left.items() if at > cutoff}
        self._left[(group, token)] = now

    def _handed(
        self, deadline: int, tokens: list[str], payload: bytes, counted: bool
    ) -> None:
        started = self._hand(deadline, tokens, payload, counted)
        if started is not None:
            self._settle(started)

    def _group(self, name: str, epoch: str) -> _Group:
        state = self._groups.get(name)
        if state is None:
            state = self._groups[name] = _Group(epoch)
        elif state.epoch != epoch:
            self._new_epoch(name, state, epoch)
        return state

    def _new_epoch(self, name: str, state: _Group, epoch: str) -> None:
        """The stream was lost: what is held goes out in order, then all restart."""
        if state.epoch:
            logger.info("group %s has a new history epoch %s", name, epoch)
        self._flush_held(state)
        state.epoch = epoch
        state.joined.clear()
        for token, n in list(state.next.items()):
            if n != JOINING:
                state.next[token] = 0

    def _drop_held(self, state: _Group, token: str, upto: int | None) -> None:
        """Take `token` out of held messages up to `upto` (all if None); those
        counted in Redis are acked."""
        acked = []
        for offset in [o for o in state.held if upto is None or o <= upto]:
            held = state.held[offset]
            if token in held.tokens:
                held.tokens.discard(token)
                if held.counted:
                    acked.append(token)
                if not held.tokens:
                    del state.held[offset]
        if acked:
            self._ack(acked)

    def _release(self, state: _Group, tokens: list[str]) -> None:
        """Hand on held messages that are now next for these tokens, in order."""
        waiting = set(tokens)
        while waiting and state.held:
            due: dict[int, list[str]] = {}
            for token in waiting:
                n = state.next.get(token)
                held = state.held.get(n) if n is not None and n > 0 else None
                if held is not None and token in held.tokens:
                    due.setdefault(n, []).append(token)
            for offset in sorted(due):
                self._deliver_held(state, offset, due[offset])
            waiting = {t for found in due.values() for t in found}

    def _deliver_held(self, state: _Group, offset: int, tokens: list[str]) -> None:
        held = state.held[offset]
        for token in tokens:
            held.tokens.discard(token)
            state.next[token] = offset + 1
        if not held.tokens:
            del state.held[offset]
        self._handed(held.deadline, tokens, held.payload, held.counted)

    def _flush_held(self, state: _Group) -> None:
        for offset in sorted(state.held):
            held = state.held[offset]
            tokens = [t for t in held.tokens if state.next.get(t) != JOINING]
            if tokens:
                self._deliver_held(state, offset, tokens)

    def _arm(self, name: str, state: _Group) -> None:
        if state.filling:
            return
        state.filling = True
        self._schedule(HOLD_SECONDS, lambda: self._start_fill(name, state))

    def _start_fill(self, name: str, state: _Group) -> None:
        task = asyncio.ensure_future(self._fill(name, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, name: str, state: _Group) -> None:
        """Fill the gaps of the members held for `HOLD_SECONDS` from history, then
        release everything held (what history lacks is skipped)."""
        try:
            with self._lock:
                plan = self._gaps(state)
            entries = None
            if plan is not None:
                epoch, first, last = plan
                try:
                    entries = await self._fetch(name, epoch, first, last)
                except Exception as exc:  # a failed fill must not stall the group
                    logger.warning("could not fill a gap of %s: %r", name, exc)
            with self._lock:
                self.fills += 1
                self._apply(state, entries or [])
        finally:
            with self._lock:
                state.filling = False
                if state.held and self._groups.get(name) is state:
                    self._arm(name, state)

    def _gaps(self, state: _Group) -> tuple[str, int, int] | None:
        firsts = [
            state.next[t]
            for held in state.held.values()
            for t in held.tokens
            if state.next.get(t, 0) > 0
        ]
        if not firsts:
            return None
        return state.epoch, min(firsts), max(state.held) - 1

    def _apply(self, state: _Group, entries: list[Entry]) -> None:
        history = {offset: (excluded, payload) for offset, excluded, payload in entries}
        waiting = {t for h in state.held.values() for t in h.tokens}
        waiting = {t for t in waiting if state.next.get(t, 0) > 0}
        if not waiting:
            return
        top = max(state.held)
        for offset in range(min(state.next[t] for t in waiting), top + 1):
            held = state.held.get(offset)
            if held is not None:
                due = [t for t in held.tokens if t in waiting]
                due = [t for t in due if state.next[t] <= offset]
                if due:
                    self._deliver_held(state, offset, due)
            found = history.get(offset)
            if found is None:
                continue
            excluded, payload = found
            due = [
                t
                for t in waiting
                if state.next[t] <= offset
                and t not in excluded
                and state.joined.get(t, -1) < offset
            ]
            for token in due:
                state.next[token] = offset + 1
            if due:
                self._handed(0, due, payload, False)
