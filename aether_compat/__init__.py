"""aether_compat: Django Channels layers with delivery counts and presence, and the
Aether Channels API on top of them."""

from .errors import ChannelFull, CommandRejected, InvalidMessage, SessionSendFailed
from .facade import Channels, Group
from .messages import ChannelMessage
from .results import SendResult

__all__ = [
    "ChannelFull",
    "ChannelMessage",
    "Channels",
    "CommandRejected",
    "Group",
    "InvalidMessage",
    "SendResult",
    "SessionSendFailed",
]
