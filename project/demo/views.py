"""Page views of the demo. They are sync views (Django runs them in a thread) and
reach the channel layer through `Channels.sync`, as any Django view can."""

from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from aether_compat import ChannelMessage, Channels
from aether_compat.permissions import get_group_policy

from .models import Room
from .room_store import RoomRefused, create_room
from .rooms import ROOM_NAME_PATTERN, check_room_name, room_group
from .stats import stats

MAX_NOTIFICATION = 2000
LISTED_ROOMS = 20


def home(
    request: HttpRequest, problem: str | None = None, status: int = 200
) -> HttpResponse:
    """Links to everything, and the rooms, most recently active first, with how
    many people are in each (distinct users across tabs and servers)."""
    rooms = [
        {
            "name": room.name,
            "members": Channels.sync.group(room.group).presence_stats().users,
        }
        for room in Room.objects.order_by("-last_activity", "name")[:LISTED_ROOMS]
    ]
    context = {
        "rooms": rooms,
        "room_pattern": ROOM_NAME_PATTERN,
        "problem": problem,
        "typed": request.POST.get("name", ""),
    }
    return render(request, "demo/home.html", context, status=status)


@login_required
@require_POST
def new_room(request: HttpRequest) -> HttpResponse:
    """The only way a room comes to exist: a signed-in user's POST (CSRF-checked),
    within the caps of settings.DEMO_ROOMS. An existing name just opens that room."""
    name = request.POST.get("name", "").strip()
    try:
        room, _ = create_room(request.user, name)
    except RoomRefused as refusal:
        return home(request, problem=str(refusal), status=400)
    return redirect("chat_room", room=room.name)


def chat_index(request: HttpRequest) -> HttpResponse:
    """`/chat/?room=name` opens that room, no name opens the lobby, and a name that
    cannot be a room's is explained."""
    room = request.GET.get("room", "").strip()
    if not room:
        return redirect("chat_room", room="lobby")
    if check_room_name(room):
        return bad_room_name(request, room)
    return redirect("chat_room", room=room)


def bad_room_name(request: HttpRequest, room: str) -> HttpResponse:
    """Says why `room` is not a room name (from `/chat/?room=` or a typed URL),
    with the form to try another; nothing is created."""
    problem = check_room_name(room) or "That is not a room name."
    context = {"name": room, "problem": problem, "room_pattern": ROOM_NAME_PATTERN}
    return render(request, "demo/room_name.html", context, status=400)


def chat_room(request: HttpRequest, room: str) -> HttpResponse:
    """A room's page; an unknown room is a 404 page that offers to create it (a
    page view never creates one)."""
    if not Room.objects.filter(name=room).exists():
        return render(request, "demo/no_room.html", {"room": room}, status=404)
    return render(request, "demo/chat.html", {"room": room, "group": room_group(room)})


def chat_history(request: HttpRequest, room: str) -> JsonResponse:
    """The room's recent messages from its group history, for a page that could not
    recover what it missed over a reconnect (docs/history.md)."""
    group = room_group(room)
    if not get_group_policy().may_join(request.user, group):
        return JsonResponse({"error": "not allowed in this room"}, status=403)
    history = Channels.sync.group(group).history()
    messages = [
        {"data": m["text"], "sender": m.get("sender"), "offset": m["offset"]}
        for m in history.messages
        if "text" in m
    ]
    return JsonResponse(
        {"epoch": history.epoch, "offset": history.offset, "messages": messages}
    )


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    return render(
        request, "demo/notifications.html", {"group": f"user:{request.user.pk}"}
    )


@login_required
@require_POST
def notify(request: HttpRequest) -> JsonResponse:
    """Broadcast the posted text to the user's own group; answer its SendResult."""
    text = request.POST.get("message", "").strip()
    if not text or len(text) > MAX_NOTIFICATION:
        return JsonResponse(
            {"error": f"write a message of 1 to {MAX_NOTIFICATION} characters"},
            status=400,
        )
    group = f"user:{request.user.pk}"
    message = ChannelMessage(
        type="notification",
        payload=text,
        sender=request.user.get_username(),
        target=group,
    )
    result = Channels.sync.group(group).broadcast(message)
    stats.record(result.sent_count, result.failed_count)
    return JsonResponse(
        {
            "group": group,
            "sent_count": result.sent_count,
            "failed_count": result.failed_count,
            "errors": [str(error) for error in result.errors],
        }
    )


@user_passes_test(lambda user: user.is_active and user.is_staff)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/dashboard.html")
