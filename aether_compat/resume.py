"""Resume for `AetherConsumer`: a join that names the last position a client saw
gets exactly the messages it missed, then live ones, with no gap and no duplicate
at the seam (docs/history.md).

How the seam holds: the group's live messages are held back from before the
membership is made; then history is read; then, with no await in between, the
`aether.joined` reply, the replay (everything after `since`, up to the history's
offset H) and the held messages with an offset above H are written, in that
order, and live delivery takes over. A live message with an offset at or below H
that arrives later (it was given its offset before the read but reached this
process after it) was in the replay, and is dropped. Without `since`, or when the
gap is not all in history, nothing is replayed and nothing is dropped.

Groups joined on connect (`get_groups()`) resume the same way once the socket is
accepted, from positions in the query string:
`?since=<group>:<epoch>:<offset>,<group>:<epoch>:<offset>` (the group name may
hold colons: the last two fields are the position).
"""

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import metrics
from .errors import MemberUnreachable
from .history import History, Position, check_since
from .names import is_group_name

if TYPE_CHECKING:
    from .consumers import AetherConsumer

logger = logging.getLogger("aether_compat.consumers")

_HISTORY_READ_FAILURES = (MemberUnreachable, ConnectionError, OSError, TimeoutError)
"""A history that cannot be read (Redis down) makes the join answer with no
position rather than fail: the membership itself stands, as in any outage."""
INVALID = Position("", -1)
"""A `since` the client sent that is no position: the join says recovered=false."""


class Resume:
    """One connection's resumes: groups whose live messages are held back while
    their history is read, and the seam (epoch, offset) of groups resumed."""

    __slots__ = ("held", "seams")

    def __init__(self) -> None:
        self.held: dict[str, list[dict[str, Any]]] = {}
        self.seams: dict[str, tuple[str, int]] = {}

    def hold_back(self, event: dict[str, Any]) -> bool:
        """Called for each live message with an offset: True when it is held (its
        group is being resumed) or dropped (the replay had it)."""
        group = event.get("group")
        held = self.held.get(group)  # type: ignore[arg-type]
        if held is not None:
            held.append(event)
            return True
        seam = self.seams.get(group)  # type: ignore[arg-type]
        return (
            seam is not None
            and event.get("epoch") == seam[0]
            and event["offset"] <= seam[1]
        )

    def forget(self, group: str) -> None:
        self.held.pop(group, None)
        self.seams.pop(group, None)


def keeps_history(consumer: "AetherConsumer", group: str) -> bool:
    """Whether the consumer's layer keeps history for `group` (stock layers and
    layers without `group_history` keep none)."""
    layer = consumer.channel_layer
    options = getattr(layer, "group_options", None)
    return (
        options is not None
        and callable(getattr(type(layer), "group_history", None))
        and options.for_group(group).keeps_history
    )


def resume_of(consumer: "AetherConsumer") -> Resume:
    if consumer.resuming is None:
        consumer.resuming = Resume()
        consumer.hold_back = consumer.resuming.hold_back
    return consumer.resuming


async def join(
    consumer: "AetherConsumer", group: str, since: Position | None, ref: Any
) -> str:
    """Run a `join` command; returns the reply to send, or "" when it was written
    here already (ahead of the replay)."""
    if not keeps_history(consumer, group):
        await consumer.join(group)
        return consumer.dialect.joined(group, ref, False if since else None)
    resume = resume_of(consumer)
    resume.forget(group)
    resume.held[group] = []
    try:
        await consumer.join(group)
    except BaseException:
        resume.forget(group)
        raise
    await catch_up(consumer, group, since, ref)
    return ""


def hold_connect_groups(consumer: "AetherConsumer", groups: list[str]) -> list[str]:
    """Before the groups of `get_groups()` are joined: hold back the live messages
    of those that keep history; returns them, to `catch_up` once accepted."""
    chosen = [group for group in groups if keeps_history(consumer, group)]
    if chosen:
        resume = resume_of(consumer)
        for group in chosen:
            resume.held[group] = []
    return chosen


async def catch_up_connect_groups(
    consumer: "AetherConsumer", groups: list[str]
) -> None:
    """Once the socket is accepted: tell each held group's position (v1 clients,
    and legacy ones that asked with `since`), replay what a `since` in the query
    string asks for, and go live."""
    positions = query_positions(consumer.scope)
    for group in groups:
        since = positions.get(group)
        tell = consumer.dialect.subprotocol is not None or since is not None
        await catch_up(consumer, group, since, None, tell=tell)


async def catch_up(
    consumer: "AetherConsumer",
    group: str,
    since: Position | None,
    ref: Any,
    tell: bool = True,
) -> None:
    """Read the group's history since `since`, then write the reply, the replay
    and the held messages in one step (see the module docstring)."""
    resume = resume_of(consumer)
    history = await read_history(consumer, group, since)
    held = resume.held.pop(group, [])
    if group not in consumer.in_groups:  # left while the history was read
        return
    recovered = history.recovered if since is not None else None
    if recovered is not None:
        metrics.resumed(recovered, len(history.messages) if recovered else 0)
    if tell:
        consumer.write_text_now(
            consumer.dialect.joined(
                group, ref, recovered, history.epoch or None, _offset(history)
            )
        )
    if recovered:
        for event in history.messages:
            consumer.write_event_now(event)
        resume.seams[group] = (history.epoch, history.offset)
        held = [
            event
            for event in held
            if event.get("epoch") != history.epoch or event["offset"] > history.offset
        ]
    for event in held:
        consumer.write_event_now(event)
    await consumer.drained()


async def read_history(
    consumer: "AetherConsumer", group: str, since: Position | None
) -> History:
    """The group's history since `since` (or its position, without); a layer that
    fails here makes the resume say recovered=false rather than fail the join."""
    if since is INVALID:
        since = Position("-", 0)  # no epoch is "-": nothing is recovered
    try:
        if since is None:
            return await consumer.channel_layer.group_history(group, limit=1)
        return await consumer.channel_layer.group_history(group, since=since)
    except _HISTORY_READ_FAILURES as exc:
        logger.warning("could not read the history of %r: %r", group, exc)
        return History.none()


def _offset(history: History) -> int | None:
    return history.offset if history.epoch else None


def query_positions(scope: dict[str, Any]) -> dict[str, Position]:
    """The `since` positions in the connection's query string, by group; an entry
    whose position is not valid maps its group to `INVALID`."""
    query = scope.get("query_string") or b""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    positions: dict[str, Position] = {}
    for value in urllib.parse.parse_qs(query).get("since", []):
        for entry in value.split(","):
            parts = entry.strip().rsplit(":", 2)
            if len(parts) == 3 and is_group_name(parts[0]):
                positions[parts[0]] = _position(parts[1], parts[2])
    return positions


def _position(epoch: str, offset: str) -> Position:
    if not offset.isdigit() or len(offset) > 16:
        return INVALID
    try:
        return check_since((epoch, int(offset)))
    except TypeError:
        return INVALID
