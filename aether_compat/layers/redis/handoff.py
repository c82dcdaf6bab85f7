"""What a process does with each item its pump takes from Redis: messages for
`receive()` go into the local buffers, messages for registered sessions are
handed to them (never waited for), and a broadcaster that asked for confirmation
is told which members could not be handed the message."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ...sessions import Started
from ..memory_queue import shareable
from .confirm import Failure, answer, answer_commands, split_mark
from .keys import channel_name, decode_item, route
from .local import LocalChannels, OpenItem
from .position import split_stamp, with_position
from .util import REDIS_FAILURES, Parts, logger, now_ms

_NAMES_KEPT = 100_000  # channel names remembered at most (then it starts again)
_OPEN = "*"  # marks an open item's id among the tokens (local.py)
_NOT_TAKEN = "it expired, or could not be opened, before its process took it"
_TOO_SLOW = "its sender did not return before the confirmation deadline"


class Handoff:
    """Hands the items of one instance's inbox on."""

    def __init__(
        self,
        parts: Parts,
        local: LocalChannels,
        own: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.box = parts.presence.box
        self.base = parts.presence.base
        self.local = local
        self.stats = parts.stats
        self._prefix = parts.prefix
        self._connections = parts.connections
        self._sessions = parts.sessions
        self._seal = parts.seal
        self._own = own  # runs a follow-up task that the inbox stops with its loop
        self._expiry_ms = parts.rules.expiry_ms
        self.sequencer: Any = None  # set by the layer: history groups' order
        # token -> (channel name, token), as met: one tuple for every item
        self._targets: dict[str, tuple[str, str]] = {}

    def deliver(self, items: list[bytes]) -> None:
        """Hand items to buffers and sessions; never waits for a session."""
        now = now_ms()
        for item in items:
            try:
                self._deliver_item(item, now)
            except Exception:  # a bug here must not stop the process's inbox
                logger.exception("could not deliver an item of %s", self.base)

    def _deliver_item(self, item: bytes, now: int) -> None:
        try:
            deadline, tokens, data = decode_item(item)
        except ValueError:  # not written by this layer: skip, do not crash
            logger.error("skipped a malformed item in %s: %r", self.base, item[:80])
            return
        stamp, tokens = split_stamp(tokens)
        reply_id, by_ms, tokens = split_mark(tokens)
        open_id, tokens = split_open(tokens)
        payload = self._seal.open(data) if deadline >= now else None
        failures: list[Failure] = []
        pending: dict[asyncio.Future[Any], str] = {}
        if payload is None:
            if open_id is None:
                self.local.ack_all(tokens)
            else:  # Redis counted them as one open item: settle it
                self.local.settled_open(open_id)
            failures = [(token, "x", _NOT_TAKEN) for token in tokens]
        else:
            if stamp is None or self.sequencer is None:
                opened = None if open_id is None else OpenItem(open_id)
                started = self.hand(deadline, tokens, payload, True, opened)
            else:  # a history group's message: offset order (sequencer.py)
                if open_id is not None:  # it may be held: count it per member now
                    self.local.count_open(tokens, open_id)
                payload = with_position(payload, stamp.epoch, stamp.offset)
                started = self.sequencer.arrive(stamp, tokens, payload, deadline)
            if started is not None:
                failures, pending = self._outcomes(started)
        if reply_id is not None:
            self._own(self._answer(reply_id, by_ms, failures, pending))

    def hand(
        self,
        deadline: int,
        tokens: list[str],
        payload: bytes,
        counted: bool,
        opened: OpenItem | None = None,
    ) -> Started | None:
        """Hand `payload` to these tokens now: into the buffers `receive()` reads,
        or to their sessions (started, never waited for). A message not `counted`
        in Redis (the sender's own sessions, a gap filled from history) acks
        nothing, nor does an `opened` one (see local.py); deadline 0 means "from
        now on"."""
        if deadline <= 0:
            deadline = now_ms() + self._expiry_ms
        targets, sessions, taken = [], [], []
        found, registered = self._targets, self._sessions
        if len(found) >= _NAMES_KEPT:
            found.clear()
        if len(registered):
            for token in tokens:
                target = found.get(token)
                if target is None:
                    target = found[token] = (channel_name(self.box, token), token)
                session = registered.get(target[0])
                if session is None:
                    targets.append(target)
                else:
                    taken.append(token)
                    sessions.append(session)
        else:  # no session registered: every token is read through receive()
            for token in tokens:
                target = found.get(token)
                if target is None:
                    target = found[token] = (channel_name(self.box, token), token)
                targets.append(target)
        if counted and opened is None:
            self.local.ack_all(taken)
        if targets or opened is not None:
            shared = shared_message(payload) if len(targets) > 1 else None
            self.local.put(deadline, targets, payload, counted, opened, shared)
        if not sessions:
            return None
        return self._sessions.start_many(sessions, payload, asyncio.get_running_loop())

    def settle(self, started: Started) -> None:
        """Log and count the failures of sessions started later (the sequencer)."""
        self._outcomes(started)

    def _outcomes(
        self, started: Started
    ) -> tuple[list[Failure], dict[asyncio.Future[Any], str]]:
        """What failed at once, and what runs on (by token), of started sessions.
        Failures are counted and logged here too."""
        failures = []
        for error in started.errors:
            self._settled(error)
            token = route(getattr(error, "channel", "")).token or ""
            failures.append((token, "s", repr(error.__cause__ or error)))
        pending = {}
        for future, session in started.pending.items():
            future.add_done_callback(lambda done: self._settled(done.result()))
            pending[future] = route(session.channel).token or ""
        return failures, pending

    def _settled(self, failure: BaseException | None) -> None:
        if failure is not None:
            self.stats.session_failures += 1
            logger.warning("%s", failure)

    async def _answer(
        self,
        reply_id: str,
        by_ms: int,
        failures: list[Failure],
        pending: dict[asyncio.Future[Any], str],
    ) -> None:
        """Tell a confirming broadcaster what this process could not hand on; its
        sessions still busy get until shortly before the broadcaster stops waiting."""
        if pending:
            left_ms = by_ms - now_ms()
            wait = max(0.0, (left_ms - max(50, left_ms // 5)) / 1000)
            done, late = await asyncio.wait(pending, timeout=wait)
            for future in done:
                if (failure := future.result()) is not None:
                    why = repr(failure.__cause__ or failure)
                    failures.append((pending[future], "s", why))
            failures += [(pending[future], "s", _TOO_SLOW) for future in late]
        data = answer(self.box, failures)
        try:
            await self._connections.execute(
                answer_commands(self._prefix, reply_id, data)
            )
        except REDIS_FAILURES as exc:  # the broadcaster counts us as silent
            self.stats.redis_error(exc)


def split_open(tokens: list[str]) -> tuple[str | None, list[str]]:
    """(open item id, the other tokens) of an item's tokens; no mark: no id."""
    if tokens and tokens[0].startswith(_OPEN):
        return tokens[0][1:], tokens[1:]
    return None, tokens


def shared_message(payload: bytes) -> dict[str, Any] | None:
    """The decoded payload for its readers to copy (see local.py), when every value
    of it is immutable; None: each reader decodes its own (as it does a payload
    that does not decode, and then meets the error itself)."""
    try:
        message = shareable(payload)
    except Exception:  # not ours to judge here: receive() raises it as before
        return None
    return message if type(message) is dict else None
