"""Group history on Redis: offsets, storage, reading, joins, for the groups whose
`group_options` keep history (others never reach this module).

- Sending: the offset is assigned and the message stored in the group's own slot
  by the script that fans it out (one server) or lists its boxes (several hosts,
  Cluster): history_scripts.py. Items carry the position in their head; receiving
  processes add "offset" and "epoch" to the message and keep each member's
  messages in offset order (sequencer.py). The sender's own sessions get the same
  stamped message, through the same sequencer.
- Reading: `read()` is `group_history()`, with aether_compat.history's semantics.
- Joining: a member starts after the offset its join read; with `last_on_join`
  it is handed the newest message first.
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import ChannelFull, MemberUnreachable
from ...history import History, Position
from ...results import SendResult
from ...session_finish import timed_out
from ...sessions import Session
from .. import codec
from ..group_options import GroupOptions
from .confirm import Request
from .connections import script
from .groups import Groups
from .history_read import as_history, parse_entry, ttl_ms
from .history_scripts import GROUP_BOXES_HISTORY, GROUP_SEND_HISTORY, READ_HISTORY
from .inbox import Inbox
from .keys import CID_LENGTH, group_tag, route
from .position import Stamp, mark, with_position
from .scripts import Script
from .sequencer import Entry, Sequencer
from .util import REDIS_FAILURES, Parts, logger, now_ms


class Append:
    """A history group's part of one group_send: what the script needs to store
    the message, and the position it gave it."""

    __slots__ = ("_args", "epoch", "group", "offset")

    def __init__(
        self, group: str, options: GroupOptions, meta_ttl_ms: int, excluded: list[str]
    ) -> None:
        self.group = group
        self.epoch = ""
        self.offset = 0
        head = " ".join([str(now_ms()), *excluded])
        ttl = ttl_ms(options)
        self._args = [new_epoch(), meta_ttl_ms, options.history_size, ttl, head]

    def one_server(self, args: list[Any]) -> tuple[Script, list[Any]]:
        return GROUP_SEND_HISTORY, [*args, *self._args]

    def sharded(self, args: list[Any], data: bytes) -> tuple[Script, list[Any]]:
        return GROUP_BOXES_HISTORY, [*args, data, *self._args]

    def got(self, epoch: str, offset: int) -> None:
        self.epoch, self.offset = epoch, offset

    def took(self, result: list[Any]) -> list[Any]:
        """The boxes of GROUP_BOXES_HISTORY's result, noting the position."""
        self.got(result[1].decode(), int(result[0]))
        return result[2:]

    @property
    def mark(self) -> str:
        return mark(self.group, self.epoch, self.offset)


def new_epoch() -> str:
    return secrets.token_hex(8)


def meta_key(prefix: str, group: str) -> str:
    return f"{prefix}:{{g.{group}}}:o"


class RedisHistory:
    """History of one Redis layer instance's history groups."""

    def __init__(self, parts: Parts, groups: Groups, inbox: Inbox) -> None:
        self.prefix = parts.prefix
        self.box = parts.presence.box
        self.meta_ttl_ms = max(parts.rules.group_expiry_ms, 1)
        self._connections = parts.connections
        self._sessions = parts.sessions
        self._seal = parts.seal
        self._stats = parts.stats
        self._groups = groups
        self._inbox = inbox
        self._tokens: dict[str, str] = {}  # channel -> token, for own sessions
        handoff = inbox.handoff
        self.sequencer = Sequencer(
            handoff.hand,
            handoff.local.ack_all,
            self._fetch,
            self._schedule,
            handoff.settle,
        )
        handoff.sequencer = self.sequencer

    # Sending

    async def send(
        self,
        group: str,
        options: GroupOptions,
        payload: bytes,
        skip: list[str],
        sessions: list[Session],
        excluded: frozenset[str],
        confirm: Request | None,
    ) -> SendResult:
        """group_send to a history group: stored with its offset in the same step
        as the fan-out; this instance's sessions get the stamped message after."""
        append = Append(group, options, self._meta_ttl(options), sorted(excluded))
        result = await self._groups.send(group, payload, skip, confirm, append)
        if not sessions:
            return result
        if not append.offset:  # Redis did not take it: no position to hand on
            why = "Redis did not take it (the group keeps history)"
            return result + SendResult.of(
                0, [MemberUnreachable(s.channel, why) for s in sessions]
            )
        stamped = with_position(payload, append.epoch, append.offset)
        tokens = self._tokens
        if len(tokens) > 100_000:  # names of gone sessions pile up
            tokens.clear()
        by_token = {}
        for session in sessions:
            token = tokens.get(session.channel)
            if token is None:
                token = tokens[session.channel] = _token_of(session.channel)
            by_token[token] = session
        stamp = Stamp(group, append.epoch, append.offset)

        def hand(_deadline: int, tokens: list[str], payload: bytes, _c: bool) -> Any:
            chosen = (
                [by_token[t] for t in tokens]
                if len(tokens) < len(by_token)
                else sessions
            )
            return self._sessions.start_many(
                chosen, payload, asyncio.get_running_loop()
            )

        started = self.sequencer.arrive(
            stamp, list(by_token), stamped, 0, counted=False, hand=hand
        )
        return result + await self._outcome(len(sessions), started)

    async def _outcome(self, count: int, started: Any) -> SendResult:
        """The count for the sender's own sessions: held ones count as handed on
        (the sequencer hands them on once their predecessors arrived)."""
        if started is None:
            return SendResult.of(count, [])
        errors: list[BaseException] = list(started.errors)
        pending = started.pending
        if pending:
            timeout = self._sessions.timeout
            done, late = await asyncio.wait(pending, timeout=timeout)
            errors += [f.result() for f in done if f.result() is not None]
            errors += [timed_out(pending[f].channel, timeout) for f in late]
        return SendResult.of(count - len(errors), errors)

    # Joining

    async def add(
        self,
        group: str,
        channel: str,
        options: GroupOptions,
        join: Callable[[], Awaitable[bool]],
        send: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        """Make the membership (`join`), then read where the group stands: the
        member expects the next offset; with `last_on_join` it gets the newest
        message first (this instance's channels through the sequencer, others
        by `send`). When Redis did not take the join, the read is skipped: the
        join answers at once, as any join does during an outage, and the member
        starts from "unknown" (its first message sets the position)."""
        box, token = route(channel)
        own = token is not None and box == self.box
        if own:
            self.sequencer.joining(group, token)
        epoch: str | None = None
        offset, last = 0, None
        try:
            if await join():
                epoch, offset, last = await self._where(group, options)
        finally:
            if own:
                handed = None if last is None else (0, last[1])
                self.sequencer.joined(group, token, epoch, offset, handed)
        if last is not None and not own:
            try:
                await send(channel, codec.decode(last[1]))
            except (ChannelFull, MemberUnreachable) as exc:  # the join itself stands
                logger.warning(
                    "last_on_join: %s did not take %s's last: %s", channel, group, exc
                )

    async def _where(
        self, group: str, options: GroupOptions
    ) -> tuple[str | None, int, tuple[int, bytes] | None]:
        """(epoch, offset, newest message for last_on_join) of the group, or
        (None, 0, None) when Redis does not answer."""
        count = 1 if options.last_on_join else 0
        try:
            epoch, offset, entries = await self._read(
                group, self._meta_ttl(options), -1, count
            )
        except REDIS_FAILURES as exc:
            self._stats.redis_error(exc)
            return None, 0, None
        return epoch, offset, self._newest(entries, options, epoch)

    def forget(self, group: str, channel: str) -> None:
        box, token = route(channel)
        if token is not None and box == self.box:
            self.sequencer.forget(group, token)

    def _newest(
        self, entries: list[Entry], options: GroupOptions, epoch: str
    ) -> tuple[int, bytes] | None:
        fresh = [e for e in entries if e[1] >= now_ms() - ttl_ms(options)]
        if not fresh:
            return None
        offset, _, _, data = fresh[-1]
        payload = self._seal.open(data)
        if payload is None:
            return None
        return offset, with_position(payload, epoch, offset)

    # Reading

    async def read(
        self,
        group: str,
        options: GroupOptions,
        since: Position | None,
        limit: int | None,
    ) -> History:
        """`group_history()`: see aether_compat.history.History."""
        if not options.keeps_history:
            return History.none()
        count = min(limit or options.history_size, options.history_size)
        start = -1 if since is None else since.offset
        epoch, offset, entries = await self._read(
            group, self._meta_ttl(options), start, count
        )
        fresh_from = now_ms() - ttl_ms(options)
        return as_history(
            Position(epoch, offset), entries, since, limit, fresh_from, self._seal
        )

    async def _read(
        self, group: str, meta_ttl: int, since: int, count: int
    ) -> tuple[str, int, list[Any]]:
        """(epoch, newest offset, entries) with entries (offset, ms, excluded
        channels, data) from since + 1 (or the newest `count` for since -1)."""
        args = [new_epoch(), meta_ttl, since, count]
        lua = script(READ_HISTORY, [meta_key(self.prefix, group)], args)
        (result,) = await self._connections.execute([(group_tag(group), lua)])
        epoch, offset, _first, *raw = result
        return epoch.decode(), int(offset), [parse_entry(item) for item in raw]

    def _meta_ttl(self, options: GroupOptions) -> int:
        """The epoch and offset outlive the messages (history_ttl) and last as
        long as memberships (group_expiry): a client that saw everything before
        a quiet spell still resumes with `recovered` True."""
        return max(self.meta_ttl_ms, ttl_ms(options))

    # For the sequencer

    async def _fetch(
        self, group: str, epoch: str, first: int, last: int
    ) -> list[Entry] | None:
        count = last - first + 1
        found, _, entries = await self._read(group, self.meta_ttl_ms, first - 1, count)
        if found != epoch:
            return None
        filled = []
        for offset, _, excluded, data in entries:
            payload = self._seal.open(data)
            if payload is None:
                continue
            mine = frozenset(
                t for b, t in map(route, excluded) if b == self.box and t is not None
            )
            filled.append((offset, mine, with_position(payload, epoch, offset)))
        return filled

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        """Timers run on the pump's loop (a sender's loop may close right after)."""
        loop = self._inbox.pump_loop() or asyncio.get_running_loop()
        loop.call_soon_threadsafe(loop.call_later, delay, callback)


def _token_of(channel: str) -> str:
    """The token of one of this instance's channels ("<prefix>.<cid>!<local>"
    without ".<cid>"): `keys.route` without its checks, for every session."""
    bang = channel.index("!")
    return channel[: bang - CID_LENGTH - 1] + channel[bang:]
