"""Who may join, leave and send where: the default policy's rules, the setting that
allows anonymous rooms, and a policy named in settings."""

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings

from aether_compat import CommandRejected
from aether_compat.permissions import (
    DefaultGroupPolicy,
    GroupPolicy,
    check_command,
    get_group_policy,
)
from aether_compat.protocol import Command

ALICE = User(pk=1, username="alice")
BOB = User(pk=2, username="bob")
STAFF = User(pk=3, username="staff", is_staff=True)
RETIRED_STAFF = User(pk=4, username="retired", is_staff=True, is_active=False)
ANONYMOUS = AnonymousUser()

DEFAULT_RULES = [
    # user, group, allowed
    (ALICE, "user:1", True),
    (ALICE, "user:2", False),
    (ALICE, "user:01", False),
    (ALICE, "user:1:extra", False),
    (BOB, "user:2", True),
    (BOB, "user:1", False),
    (STAFF, "user:1", False),
    (ANONYMOUS, "user:1", False),
    (ANONYMOUS, "user:None", False),
    (None, "user:None", False),
    (ALICE, "room:lobby", True),
    (ALICE, "chat:42", True),
    (ANONYMOUS, "room:lobby", False),
    (None, "chat:42", False),
    (ALICE, "dashboard:staff", False),
    (ANONYMOUS, "dashboard:staff", False),
    (STAFF, "dashboard:staff", True),
    (RETIRED_STAFF, "dashboard:staff", False),
    (ALICE, "lobby", False),
    (STAFF, "news:today", False),
    (ALICE, "rooms:lobby", False),
]


def _id(case):
    user, group, allowed = case
    who = getattr(user, "username", None) or "anonymous"
    return f"{who}-{group}-{'allowed' if allowed else 'refused'}"


@pytest.mark.parametrize("case", DEFAULT_RULES, ids=_id)
def test_default_policy(case):
    user, group, allowed = case
    policy = DefaultGroupPolicy()
    assert policy.may_join(user, group) is allowed
    assert policy.may_send(user, group) is allowed


@pytest.mark.parametrize("group", ["room:lobby", "chat:42"])
def test_anonymous_rooms_need_the_setting(group):
    assert DefaultGroupPolicy(allow_anonymous_rooms=True).may_join(ANONYMOUS, group)
    assert not DefaultGroupPolicy(allow_anonymous_rooms=False).may_join(
        ANONYMOUS, group
    )


@pytest.mark.parametrize("group", ["user:1", "dashboard:staff", "lobby"])
def test_the_anonymous_rooms_setting_opens_nothing_else(group):
    assert not DefaultGroupPolicy(allow_anonymous_rooms=True).may_join(ANONYMOUS, group)


def test_settings_choose_anonymous_rooms():
    with override_settings(AETHER_ALLOW_ANONYMOUS_ROOMS=False):
        assert not get_group_policy().may_join(ANONYMOUS, "room:a")
    with override_settings(AETHER_ALLOW_ANONYMOUS_ROOMS=True):
        assert get_group_policy().may_join(ANONYMOUS, "room:a")


class EverythingPolicy:
    """Test policy named by dotted path in settings."""

    def may_join(self, user, group):
        return True

    def may_send(self, user, group):
        return group != "room:read-only"


class NotAPolicy:
    pass


def test_settings_can_name_another_policy():
    with override_settings(
        AETHER_GROUP_POLICY="tests.test_permissions.EverythingPolicy"
    ):
        policy = get_group_policy()
    assert isinstance(policy, EverythingPolicy)
    assert isinstance(policy, GroupPolicy)
    check_command(policy, ANONYMOUS, Command("join", "dashboard:staff"))
    with pytest.raises(CommandRejected) as caught:
        check_command(policy, ANONYMOUS, Command("send", "room:read-only", "hi"))
    assert caught.value.code == "not_allowed"


def test_a_named_object_without_the_methods_is_refused():
    with (
        override_settings(AETHER_GROUP_POLICY="tests.test_permissions.NotAPolicy"),
        pytest.raises(TypeError, match="may_join"),
    ):
        get_group_policy()


@pytest.mark.parametrize("action", ["join", "leave", "send"])
def test_check_command_refuses_with_not_allowed(action):
    command = Command(action, "user:2", "hi" if action == "send" else None)
    with pytest.raises(CommandRejected, match="user:2") as caught:
        check_command(DefaultGroupPolicy(), ALICE, command)
    assert caught.value.code == "not_allowed"
    check_command(DefaultGroupPolicy(), BOB, command)
