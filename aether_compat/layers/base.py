"""What both aether_compat layers add to `channels.layers.BaseChannelLayer`: the
shared settings, name rules that also allow `:` in group names, and sessions."""

from collections.abc import Iterable, Mapping
from re import Pattern
from typing import Any

from channels.layers import BaseChannelLayer

from ..names import check_channel_name, check_group_name
from ..sessions import Sender, SessionTable
from . import codec
from .group_options import GroupOptionTable
from .idempotency import DEFAULT_WINDOW, LocalClaims, check_key


class AetherLayer(BaseChannelLayer):
    """Base of our two backends. Subclasses implement the Channels API plus
    `group_members`; `group_send` returns a `SendResult`."""

    extensions = ["groups", "flush", "group_members", "sessions"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
        delivery_timeout: float = 2.0,
        group_options: Mapping[str | Pattern[str], Mapping[str, Any]] | None = None,
    ) -> None:
        _require_positive("expiry", expiry)
        _require_positive("delivery_timeout", delivery_timeout)
        _require_positive("group_expiry", group_expiry)
        _require_positive("capacity", capacity, integer=True)
        super().__init__(expiry=expiry, capacity=capacity)
        self.group_expiry = group_expiry
        for pattern, value in (channel_capacity or {}).items():
            _require_positive(f"channel_capacity[{pattern!r}]", value, integer=True)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.sessions = SessionTable(codec.decode, delivery_timeout)
        self.group_options = GroupOptionTable(group_options)
        """What each group opted in to (history, presence events): see
        group_options.py."""
        self._claims = LocalClaims()

    # Names: Channels' rules, checked whole-string; groups may also hold ':'.

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        check_channel_name(name)
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(
                f"Specific channel names in receive() must end at the !: {name!r}"
            )
        return True

    def require_valid_group_name(self, name: Any) -> bool:
        check_group_name(name)
        return True

    # Sessions: a registered channel is fed by calling its sender.

    async def register_session(self, session_id: str, sender: Sender) -> None:
        """Deliver the messages of channel `session_id` to `sender` from now on."""
        self.require_valid_channel_name(session_id)
        self.sessions.register(session_id, sender, self.get_capacity(session_id))

    async def unregister_session(self, session_id: str) -> None:
        """Stop calling the session's sender; later messages queue as usual."""
        self.require_valid_channel_name(session_id)
        self.sessions.unregister(session_id)

    async def group_members(self, group: str) -> set[str]:
        raise NotImplementedError

    async def group_names(self) -> list[str]:
        """Every group with members now (for operators' pages; not a hot path)."""
        raise NotImplementedError

    async def claim_once(
        self,
        key: str,
        *,
        group: str | None = None,
        channel: str | None = None,
        window: float = DEFAULT_WINDOW,
    ) -> bool:
        """Claim an idempotency key for a group or a channel: True the first time
        within `window` seconds (send it), False for a repeat (a duplicate). Here
        the claims live in this process; the Redis layer keeps them in Redis."""
        check_key(key)
        target = f"g:{group}" if group is not None else f"c:{channel}"
        return self._claims.claim(target, key, window)

    def excluded(self, exclude: Iterable[str]) -> frozenset[str]:
        """The channel names a broadcast leaves out, checked: an excluded member is
        neither sent nor failed."""
        if isinstance(exclude, str):
            raise TypeError(
                f"exclude takes channel names, not one string: use [{exclude!r}]"
            )
        return frozenset(check_channel_name(name) for name in exclude)

    def confirm_window(self, confirm: bool | float) -> float | None:
        """Seconds a confirmed broadcast waits at most (None: not confirmed). True
        waits `delivery_timeout` and one second more, for the answers to travel."""
        if confirm is False:
            return None
        if confirm is True:
            return self.sessions.timeout + 1.0
        if isinstance(confirm, int | float) and confirm > 0:
            return float(confirm)
        raise TypeError(
            f"confirm must be True, False or a positive number of seconds, "
            f"got {confirm!r}"
        )


def is_aether_layer(layer: Any) -> bool:
    """Whether `layer` is one of ours: it counts deliveries, lists members and
    takes sessions. Checked on the class: channels_redis' pub/sub layer builds a
    per-loop layer in `__getattr__`, and a probe must not do that."""
    return issubclass(type(layer), AetherLayer)


def _require_positive(name: str, value: Any, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"channel layer setting {name} must be {kind}, got {value!r}")
