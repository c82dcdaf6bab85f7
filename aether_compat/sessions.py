"""This process's table of registered sessions: channel name -> async sender.

A registered session receives its channel's messages by a direct call instead of
through a queue and `receive()`; both layers consult one table of their own.
"""

from collections.abc import Awaitable, Callable
from typing import Any

Sender = Callable[[dict[str, Any]], Awaitable[Any]]


class SessionTable:
    """Maps channel names to the senders registered for them in this process."""

    __slots__ = ("_senders",)

    def __init__(self) -> None:
        self._senders: dict[str, Sender] = {}

    def register(self, channel: str, sender: Sender) -> None:
        if not callable(sender):
            raise TypeError(f"session sender must be an async callable, got {sender!r}")
        self._senders[channel] = sender

    def unregister(self, channel: str) -> None:
        self._senders.pop(channel, None)

    def get(self, channel: str) -> Sender | None:
        return self._senders.get(channel)

    def __contains__(self, channel: str) -> bool:
        return channel in self._senders

    def __len__(self) -> int:
        return len(self._senders)
