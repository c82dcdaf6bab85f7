"""Test-only sync views that call the facade the way a project's views would."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST

from aether_compat import Channels


@require_POST
def broadcast(request: HttpRequest, group: str) -> HttpResponse:
    """Broadcast the posted text and answer with the counts, one error a line."""
    try:
        room = Channels.sync.group(group)
    except TypeError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    result = room.broadcast(request.POST["text"], sender=request.POST.get("sender"))
    lines = [f"sent={result.sent_count} failed={result.failed_count}"]
    lines += [f"error: {error}" for error in result.errors]
    return HttpResponse("\n".join(lines), content_type="text/plain")


@require_POST
def send(request: HttpRequest, session_id: str) -> JsonResponse:
    return JsonResponse(
        {"delivered": Channels.sync.send(session_id, request.POST["text"])}
    )


def members(request: HttpRequest, group: str) -> JsonResponse:
    return JsonResponse({"members": sorted(Channels.sync.group_members(group))})


urlpatterns = [
    path("broadcast/<str:group>/", broadcast),
    path("send/<str:session_id>/", send),
    path("members/<str:group>/", members),
]
