"""Presence of one Redis layer instance (a "process"): a live key with a short TTL
that a heartbeat renews, and a copy of the memberships of its own channels, so that
it can announce them again when Redis lost them (restart, failover, expired key).

Members of a process whose live key is gone are left out of `group_members` and
counted as failures by `group_send` (which then purges them); a `kill -9` therefore
shows within `presence_timeout` seconds, with nobody calling `group_discard`.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .connections import Command, command
from .keys import box_base, group_key, group_tag
from .util import REDIS_FAILURES, backoff, logger, now_ms, raise_if_cancelling

Tagged = list[tuple[str, Command]]
Execute = Callable[[Tagged], Awaitable[list[Any]]]


class Presence:
    """The live key and the memberships of this process's own channels."""

    def __init__(
        self, prefix: str, box: str, timeout: float, group_expiry: float
    ) -> None:
        self.prefix = prefix
        self.box = box
        self.base = box_base(prefix, box)
        self.ttl_ms = max(1, int(timeout * 1000))
        self.interval = timeout / 4
        self.group_expiry_ms = int(group_expiry * 1000)
        self.memberships: dict[str, dict[str, int]] = {}
        self.reannounced = 0
        self.dirty = False  # a membership may be missing in Redis: announce again

    def join(self, group: str, token: str, now_ms: int) -> None:
        self.memberships.setdefault(group, {})[token] = now_ms

    def leave(self, group: str, token: str) -> None:
        members = self.memberships.get(group)
        if members is not None and members.pop(token, None) is not None and not members:
            del self.memberships[group]

    def groups_of(self, token: str) -> list[str]:
        return [g for g, members in self.memberships.items() if token in members]

    def forget_all(self) -> None:
        self.memberships.clear()

    def alive(self, *, only_if_present: bool = False) -> Tagged:
        words = ["SET", self.base + "l", b"1", "PX", self.ttl_ms]
        if only_if_present:
            words.append("XX")
        return [(self.box, command(*words))]

    def announce(self, now_ms: int) -> Tagged:
        """Everything Redis must hold for this process: the live key, and each
        membership with its original join time (so `group_expiry` still holds)."""
        cutoff = now_ms - self.group_expiry_ms
        tagged = self.alive()
        for group, members in list(self.memberships.items()):
            for token, joined in list(members.items()):
                if joined < cutoff:
                    del members[token]
            if not members:
                del self.memberships[group]
                continue
            pairs = [x for token, joined in members.items() for x in (joined, token)]
            key = f"{self.base}m:{group}"
            procs = group_key(self.prefix, group)
            ttl = self.group_expiry_ms
            tagged += [
                (self.box, command("ZADD", key, *pairs)),
                (self.box, command("PEXPIRE", key, ttl)),
                (group_tag(group), command("ZADD", procs, max(pairs[::2]), self.box)),
                (group_tag(group), command("PEXPIRE", procs, ttl)),
            ]
        return tagged

    async def heartbeat(self, execute: Execute, on_error: Callable[[], None]) -> None:
        """Renew the live key every `interval`; if it was gone (or a join failed to
        reach Redis), announce everything. After a failure, retry at the backoff
        pace, so members are back within moments of Redis."""
        failures = 0
        while True:
            raise_if_cancelling()
            try:
                (renewed,) = await execute(self.alive(only_if_present=True))
                if renewed is None or self.dirty:
                    self.dirty = False
                    await execute(self.announce(now_ms()))
                    self.reannounced += 1
                    logger.info("re-announced %s groups", len(self.memberships))
                failures = 0
            except REDIS_FAILURES as exc:
                raise_if_cancelling()
                self.dirty = True
                failures += 1
                on_error()
                logger.warning("presence heartbeat failed: %r", exc)
            raise_if_cancelling()  # a cancel absorbed by redis-py: stop, do not sleep
            await asyncio.sleep(backoff(failures) if failures else self.interval)
