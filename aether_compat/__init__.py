"""aether_compat: Django Channels layers with delivery counts and presence, and the
Aether Channels API on top of them."""

from .errors import (
    AetherError,
    ChannelFull,
    CommandRejected,
    InvalidMessage,
    MemberUnreachable,
    SessionSendFailed,
)
from .facade import Channels, Group
from .messages import ChannelMessage
from .results import SendResult

__all__ = [
    "AetherError",
    "ChannelFull",
    "ChannelMessage",
    "Channels",
    "CommandRejected",
    "Group",
    "InvalidMessage",
    "MemberUnreachable",
    "SendResult",
    "SessionSendFailed",
]
