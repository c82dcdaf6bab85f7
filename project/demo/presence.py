"""Who is in a chat room, by name: the layer's `group_members()` says which channels
are present (across processes, on Redis too), `ChatSession` rows give them names."""

import hashlib
import hmac
import json
import logging
from collections import Counter

from django.conf import settings

from aether_compat import ChannelMessage, Channels

from .models import ChatSession

PRESENCE = "presence"
logger = logging.getLogger(__name__)


def guest_name(channel: str) -> str:
    """A stable name for an anonymous connection that nobody can guess or choose
    (keyed with SECRET_KEY) and two guests practically never share (48 bits)."""
    key = settings.SECRET_KEY.encode()
    digest = hmac.new(key, b"guest:" + channel.encode(), hashlib.sha256)
    return "guest-" + digest.hexdigest()[:12]


async def roster(group: str) -> dict[str, object]:
    """Names present in `group` (with their number of open tabs), and how many
    members have no name here (connections that joined by command)."""
    members = await Channels.group_members(group)
    rows = [row async for row in ChatSession.objects.filter(group=group)]
    gone = [row.channel for row in rows if row.channel not in members]
    if gone:
        await ChatSession.objects.filter(channel__in=gone).adelete()
    named = [row for row in rows if row.channel in members]
    tabs = Counter(row.label for row in named)
    return {
        "members": [{"name": name, "tabs": tabs[name]} for name in sorted(tabs)],
        "connections": len(members),
        "unnamed": len(members) - len(named),
    }


async def announce(group: str) -> None:
    """Tell everyone in `group` who is there now. The list is a courtesy: when the
    layer cannot say who is there (Redis down), this update is skipped, and the
    connection that arrived or left is not harmed."""
    try:
        present = await roster(group)
    except Exception as exc:  # any layer's failure; the next change sends a list
        logger.warning("member list of %s not sent: %r", group, exc)
        return
    payload = json.dumps(present, separators=(",", ":"))
    await Channels.group(group).broadcast(
        ChannelMessage(type=PRESENCE, payload=payload, target=group)
    )


async def arrive(channel: str, group: str, label: str) -> None:
    await ChatSession.objects.aupdate_or_create(
        channel=channel, defaults={"group": group, "label": label}
    )
    await announce(group)


async def depart(channel: str, group: str) -> None:
    await ChatSession.objects.filter(channel=channel).adelete()
    await announce(group)
