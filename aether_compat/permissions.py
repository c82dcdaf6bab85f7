"""Who may join, leave or send to which group: the `GroupPolicy` protocol, the
default rules, and the `AETHER_GROUP_POLICY` setting that names another policy.

Default rules (`DefaultGroupPolicy`):
    user:<id>      only the user whose primary key is <id>
    dashboard:*    only active staff users
    room:*, chat:* authenticated users; anonymous ones too when
                   AETHER_ALLOW_ANONYMOUS_ROOMS is true
    anything else  nobody (name another policy to open more groups)
Leaving is allowed wherever joining is; sending wherever joining is.
"""

from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string

from .errors import CommandRejected
from .protocol import Command

ROOM_PREFIXES = ("room:", "chat:")


CONTROL_PREFIX = "aether."
"""Groups the server joins for its own purposes (see authority.py)."""


@runtime_checkable
class GroupPolicy(Protocol):
    """Decides, per user and group, whether a connection may join or send there.

    `user` is `scope["user"]`: a Django user or `AnonymousUser` (or `None` when the
    ASGI stack has no `AuthMiddlewareStack`, which should be treated as anonymous).
    """

    def may_join(self, user: Any, group: str) -> bool: ...

    def may_send(self, user: Any, group: str) -> bool: ...


class DefaultGroupPolicy:
    """The rules in this module's docstring."""

    def __init__(self, allow_anonymous_rooms: bool = False) -> None:
        self.allow_anonymous_rooms = allow_anonymous_rooms

    def may_join(self, user: Any, group: str) -> bool:
        if group.startswith("user:"):
            return is_authenticated(user) and group == f"user:{user.pk}"
        if group.startswith("dashboard:"):
            return is_staff(user)
        if group.startswith(ROOM_PREFIXES):
            return self.allow_anonymous_rooms or is_authenticated(user)
        return False

    def may_send(self, user: Any, group: str) -> bool:
        return self.may_join(user, group)


def is_authenticated(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def is_staff(user: Any) -> bool:
    return (
        is_authenticated(user)
        and bool(getattr(user, "is_active", False))
        and bool(getattr(user, "is_staff", False))
    )


def get_group_policy() -> GroupPolicy:
    """The policy the settings name: `AETHER_GROUP_POLICY` is a dotted path to a
    class or factory called with no arguments; unset means `DefaultGroupPolicy`."""
    path = getattr(settings, "AETHER_GROUP_POLICY", None)
    if not path:
        allow = bool(getattr(settings, "AETHER_ALLOW_ANONYMOUS_ROOMS", False))
        return DefaultGroupPolicy(allow_anonymous_rooms=allow)
    policy = import_string(path)()
    if not isinstance(policy, GroupPolicy):
        raise TypeError(
            f"AETHER_GROUP_POLICY {path!r} must build an object with may_join(user, "
            f"group) and may_send(user, group); got {policy!r}"
        )
    return policy


def check_command(policy: GroupPolicy, user: Any, command: Command) -> None:
    """Raise `CommandRejected("not_allowed")` when `policy` refuses `command`.
    Control groups (`aether.` names) are the server's alone, whatever the policy."""
    if command.group is not None and command.group.startswith(CONTROL_PREFIX):
        allowed = False
    elif command.action == "send":
        allowed = policy.may_send(user, command.group)
    else:
        allowed = policy.may_join(user, command.group)
    if not allowed:
        who = "a logged-in user" if is_authenticated(user) else "anonymous"
        raise CommandRejected(
            "not_allowed",
            f"{command.action} {command.group!r} is not allowed for this connection "
            f"({who})",
        )
