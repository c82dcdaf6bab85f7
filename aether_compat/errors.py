"""Every exception aether_compat raises, so callers know what to catch.

    Exception
     ├── channels.exceptions.ChannelFull
     │    └── ChannelFull ............ a channel holds `capacity` undelivered messages
     ├── TypeError, AssertionError
     │    └── InvalidMessage ......... a message Redis could never carry, or not a dict
     └── AetherError
          ├── SessionSendFailed ...... a registered session's sender raised
          ├── MemberUnreachable ...... a member's process is gone or its shard is down
          └── CommandRejected ........ a WebSocket command was refused (see protocol.py)

Invalid channel and group names raise plain `TypeError`, as Channels does.
"""

from channels.exceptions import ChannelFull as _ChannelsChannelFull


class ChannelFull(_ChannelsChannelFull):
    """Raised when a channel already holds `capacity` undelivered messages.

    A subclass of Channels' own `ChannelFull`, so existing handlers catch it; it adds
    the channel's name and capacity, which Channels' bare exception does not carry.
    """

    def __init__(self, channel: str, capacity: int) -> None:
        super().__init__(
            f"channel {channel!r} is full: {capacity} messages are waiting"
        )
        self.channel = channel
        self.capacity = capacity


class InvalidMessage(TypeError, AssertionError):
    """Raised when a message is not a dict, uses a reserved key, or holds a value
    that cannot cross the Redis wire.

    It is a `TypeError` (what the spec asks for) and an `AssertionError` (what Channels'
    own layers raise), so code written against either keeps working.
    """


class AetherError(Exception):
    """Base of the errors that aether_compat adds to Channels' own."""


class SessionSendFailed(AetherError):
    """Raised when a registered session's sender raised; the original is `__cause__`."""

    def __init__(self, channel: str, error: BaseException) -> None:
        super().__init__(f"session {channel!r} failed to take the message: {error!r}")
        self.channel = channel
        self.error = error
        self.__cause__ = error  # also when built as a value, not raised


class MemberUnreachable(AetherError):
    """Raised when a group member cannot be reached: its process stopped announcing
    itself, or the Redis shard that holds its channel does not answer."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"channel {channel!r} is unreachable: {reason}")
        self.channel = channel
        self.reason = reason


class CommandRejected(AetherError):
    """Raised when a WebSocket command is malformed or not allowed; `code` is a short
    machine-readable reason (`not_json`, `not_allowed`, ...) sent back to the client,
    with the command's `ref` when it could be read."""

    def __init__(self, code: str, detail: str, ref: str | int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ref = ref
