"""Presence frames for one connection: the layer's `aether.presence_state` and
`aether.presence_diff` events become v1 frames, with no change counted twice and
at most one diff frame per group per `DIFF_WINDOW`.

The contract every layer gives the events: a state carries `_seq` S, the group's
sequence number when it was read; a diff carries `_seqs`, the number of each of
its changes ("+key" for a join, "-key" for a leave), strictly increasing per group
and never reused. Diffs of several processes are not ordered against each other
or against the state, so each change is judged alone: one numbered at or below S
is in the state already, one numbered at or below the last applied for its key is
older than what the client has, and a join of a key the client shows (or a leave
of one it does not) changes nothing; all of those are dropped. A diff can reach
the connection before its state (they take different paths): diffs that come
between the join and the state are held, and judged once the state is here. A
diff with no `_seqs` (a hand-made event) is applied as it is.

Coalescing: the first diff after a quiet `DIFF_WINDOW` is written at once; later
ones wait for the window's end and go out as one frame. Within a window, per key,
a join then a leave cancel out (the client never saw the join); a leave then a
join are both sent (the client applies `leaves` before `joins`).
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from . import metrics
from .presence import DIFF_WINDOW, PRESENCE_DIFF, PRESENCE_STATE, Presence

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_MAX_EARLY = 1024  # diffs held before a state at most (a few in practice)
_NEW = object()


class _Change:
    """A key's changes in the current window: the first and the last kind, the
    metadata of its first leave and of its last join."""

    __slots__ = ("first", "join", "last", "leave")

    def __init__(self, kind: str) -> None:
        self.first = self.last = kind
        self.join: list[Any] | None = None
        self.leave: list[Any] | None = None


class _View:
    """What the client was shown of one group. Made when the group's first
    presence event comes: a group without presence events costs no view."""

    __slots__ = (
        "changes",
        "early",
        "handle",
        "numbers",
        "ready",
        "sent_at",
        "seq",
        "shown",
    )

    def __init__(self) -> None:
        self.ready = False  # the state is here
        self.seq: int | None = None  # the state's `_seq` (None: it had none)
        self.numbers: dict[str, int] = {}  # key -> number of its last applied change
        self.shown: set[str] = set()  # the keys the client shows
        self.early: list[dict[str, Any]] = []
        self.changes: dict[str, _Change] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.sent_at = -DIFF_WINDOW


_EXPECTING = object()
"""In `_views`: the connection joined the group, no presence event came yet."""


class PresenceFrames:
    """The presence views of one connection's groups; `write` puts a text frame on
    the connection's ordered path."""

    __slots__ = ("_views", "_write")

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        # None: the connection left the group (a state still on its way is
        # dropped); _EXPECTING: joined, its view is made by its first event.
        self._views: dict[str, _View | object | None] = {}

    def expect(self, group: str) -> None:
        """The connection is joining `group`: a state may come; earlier views go."""
        self.forget(group)
        self._views[group] = _EXPECTING

    def forget(self, group: str) -> None:
        """The connection left `group`: nothing more is written for it."""
        view = self._views.get(group)
        if isinstance(view, _View) and view.handle is not None:
            view.handle.cancel()
        self._views[group] = None

    def close(self) -> None:
        for group in list(self._views):
            self.forget(group)
        self._views.clear()

    def state(self, event: dict[str, Any]) -> None:
        """A state: for a group being joined, or one the application joined this
        connection to (`Channels.group_add` with its channel name)."""
        group = event.get("group")
        if not isinstance(group, str) or self._views.get(group, _NEW) is None:
            return
        view = self._views.get(group)
        if not isinstance(view, _View):
            view = self._views[group] = _View()
        if view.handle is not None:
            view.handle.cancel()
            view.handle = None
        view.ready = True
        view.seq = event.get("_seq")
        view.changes = {}
        view.numbers = {}
        view.shown = set(event["presence"])
        self._write(
            _dumps(
                {"type": PRESENCE_STATE, "group": group, "presence": event["presence"]}
            )
        )
        metrics.presence_frame("state")
        early, view.early = view.early, []
        for diff in early:
            self.diff(diff)

    def diff(self, event: dict[str, Any]) -> None:
        group = event.get("group")
        view = self._views.get(group)  # type: ignore[arg-type]
        if view is None:
            return
        if view is _EXPECTING:
            view = self._views[group] = _View()  # type: ignore[index]
        if not view.ready:
            if len(view.early) < _MAX_EARLY:
                view.early.append(event)
            return
        _merge(view.changes, _judged(view, event))
        if view.handle is None and view.changes:
            loop = asyncio.get_running_loop()
            wait = view.sent_at + DIFF_WINDOW - loop.time()
            if wait <= 0:
                self._send(group, view)  # type: ignore[arg-type]
            else:
                view.handle = loop.call_later(wait, self._send, group, view)

    def _send(self, group: str, view: _View) -> None:
        view.handle = None
        if self._views.get(group) is not view:
            return
        joins, leaves = _net(view.changes)
        view.changes = {}
        if joins or leaves:
            view.sent_at = asyncio.get_running_loop().time()
            frame = {"type": PRESENCE_DIFF, "group": group}
            self._write(_dumps({**frame, "joins": joins, "leaves": leaves}))
            metrics.presence_frame("diff")


Entry = tuple[str, str, list[Any]]
"""(kind "join" or "leave", key, metadata list): one change of a diff."""


def _judged(view: _View, event: dict[str, Any]) -> list[Entry]:
    """The diff's changes that change what the client shows (see the module
    docstring), in the order of their numbers; `view` notes them."""
    numbers = event.get("_seqs")
    if not isinstance(numbers, dict):
        numbers = None
    entries = [
        (kind, key, metas)
        for kind in ("leave", "join")
        for key, metas in (event.get(kind + "s") or {}).items()
    ]

    def number(entry: Entry) -> int | None:
        sign = "+" if entry[0] == "join" else "-"
        return numbers.get(sign + entry[1]) if numbers is not None else None

    if numbers is not None:
        entries.sort(key=lambda entry: number(entry) or 0)
    kept: list[Entry] = []
    for entry in entries:
        kind, key, _ = entry
        if numbers is not None:
            found = number(entry)
            if found is not None:
                if view.seq is not None and found <= view.seq:
                    continue
                if found <= view.numbers.get(key, -1):
                    continue
                view.numbers[key] = found
            if (kind == "join") == (key in view.shown):
                continue
        if kind == "join":
            view.shown.add(key)
        else:
            view.shown.discard(key)
        kept.append(entry)
    return kept


def _merge(changes: dict[str, _Change], entries: list[Entry]) -> None:
    for kind, key, metas in entries:
        change = changes.get(key)
        if change is None:
            change = changes[key] = _Change(kind)
        change.last = kind
        if kind == "join":
            change.join = metas
        elif change.leave is None:
            change.leave = metas


def _net(changes: dict[str, _Change]) -> tuple[Presence, Presence]:
    """The frame's joins and leaves: what the window's changes amount to."""
    joins: Presence = {}
    leaves: Presence = {}
    for key, change in changes.items():
        if change.first == "leave":
            leaves[key] = change.leave or []
        if change.last == "join":
            joins[key] = change.join or []
    return joins, leaves
