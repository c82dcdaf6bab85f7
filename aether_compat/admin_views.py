"""A live operators' page under the Django admin (staff only): the groups with
their member and user counts, the members of one group (with their presence
metadata where the layer keeps it), this process's layer figures, and a button
that closes one connection on whichever server holds it (`Channels.disconnect`).

Mount it before the admin's own URLs:
`path("admin/aether/", include("aether_compat.admin_urls"))`. The page polls
`state.json` once a second; each poll costs one group listing (SCAN on Redis)
and one count per group shown, at most `MAX_GROUPS`.
"""

import contextlib
import dataclasses
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from .facade import Channels
from .layers import is_aether_layer
from .names import check_channel_name, check_group_name
from .permissions import CONTROL_PREFIX

MAX_GROUPS = 200


def live_page(request: HttpRequest) -> HttpResponse:
    """The page; its script reads `state.json` and posts to `disconnect/`."""
    context = {**admin.site.each_context(request), "title": "Live connections"}
    return render(request, "aether_compat/admin_live.html", context)


def state(request: HttpRequest) -> JsonResponse:
    """Groups, the members of `?group=`, and this process's figures, as JSON."""
    group = request.GET.get("group") or None
    try:
        if group is not None:
            check_group_name(group)
    except TypeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(async_to_sync(_state)(group))


@require_POST
def disconnect(request: HttpRequest) -> JsonResponse:
    """Close the connection of channel `channel` (POST), on any server, with
    close code 4003; `reached` says whether the request reached its channel."""
    try:
        channel = check_channel_name(request.POST.get("channel", ""))
    except TypeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    reached = Channels.sync.disconnect(channel, reason="closed by an operator")
    return JsonResponse({"channel": channel, "reached": reached})


async def _state(group: str | None) -> dict[str, Any]:
    layer = Channels.layer
    if not is_aether_layer(layer):
        return {"groups": [], "group": None, "process": {"layer": _name(layer)}}
    names = [n for n in await layer.group_names() if not n.startswith(CONTROL_PREFIX)]
    groups = [await _counts(layer, name) for name in names[:MAX_GROUPS]]
    return {
        "groups": groups,
        "more_groups": max(0, len(names) - MAX_GROUPS),
        "group": await _members(layer, group) if group else None,
        "process": process_stats(layer),
    }


async def _counts(layer: Any, group: str) -> dict[str, Any]:
    # A layer may declare presence and not keep it (NotImplementedError).
    with contextlib.suppress(NotImplementedError):
        stats = await layer.group_presence_stats(group)
        return {"name": group, "connections": stats.connections, "users": stats.users}
    members = await layer.group_members(group)
    return {"name": group, "connections": len(members), "users": None}


async def _members(layer: Any, group: str) -> dict[str, Any]:
    members = sorted(await layer.group_members(group))
    presence = None
    with contextlib.suppress(NotImplementedError):
        presence = await layer.group_presence(group)
    return {"name": group, "members": members, "presence": presence}


def process_stats(layer: Any) -> dict[str, Any]:
    """What this process's layer can tell about itself (the process that answered
    the request; other processes keep their own)."""
    stats: dict[str, Any] = {"layer": _name(layer)}
    sessions = getattr(layer, "sessions", None)
    if sessions is not None:
        stats["connections"] = len(sessions)
    if hasattr(layer, "membership_count"):
        stats["memberships"] = layer.membership_count()
    if hasattr(layer, "client_id"):
        stats["client_id"] = layer.client_id
    redis = getattr(layer, "stats", None)
    if dataclasses.is_dataclass(redis):
        stats.update(dataclasses.asdict(redis))
    return stats


def _name(layer: Any) -> str:
    return f"{type(layer).__module__}.{type(layer).__qualname__}"
