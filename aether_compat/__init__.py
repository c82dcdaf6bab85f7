"""aether_compat: Django Channels layers with delivery counts and presence, and the
Aether Channels API on top of them."""

from .errors import ChannelFull, CommandRejected, InvalidMessage, SessionSendFailed
from .messages import ChannelMessage
from .results import SendResult

__all__ = [
    "ChannelFull",
    "ChannelMessage",
    "CommandRejected",
    "InvalidMessage",
    "SendResult",
    "SessionSendFailed",
]
