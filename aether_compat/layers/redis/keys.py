"""Where the Redis layer keeps things: key names, and which "box" a channel lives in.

A box is what one Redis list feeds:
- `p.<cid>`: one layer instance ("process"); every `new_channel()` name of that
  instance (`<prefix>.<cid>!<local>`) is delivered through its inbox and told apart
  by a short token (`<prefix>!<local>`, the name without `.<cid>`).
- `c.<name>`: any other channel name, with a list of its own.

Every key carries its box or group in a `{hash tag}`, so the keys one script touches
sit in one Redis Cluster slot, and placement on several hosts is by that tag too.

    <prefix>:{p.<cid>}:q     list  inbox: "<deadline ms>\\n<tokens>\\n<payload>" items
    <prefix>:{p.<cid>}:f     list  items the pump took but has not handed on yet
    <prefix>:{p.<cid>}:n     hash  token -> messages queued or buffered, not received
    <prefix>:{p.<cid>}:c     hash  token -> capacity, only where it is not the default
    <prefix>:{p.<cid>}:o     hash  open item id -> its tokens: group messages stored
                                   without a count per token until the process
                                   settles them (scripts.py, local.py)
    <prefix>:{p.<cid>}:s     string  the last open item id
    <prefix>:{p.<cid>}:l     string  present while the process is alive (short TTL)
    <prefix>:{p.<cid>}:m:<g> zset  token -> join time (ms): members of group g here
    <prefix>:{c.<name>}:q    list  a plain channel's messages
    <prefix>:{c.<name>}:c    string  its capacity, only where it is not the default
    <prefix>:{g.<group>}:p   zset  box -> latest join time (ms): where g has members
                                   (a box leaves it with its last member; empty
                                   sorted sets vanish, so no key outlives them)
    <prefix>:{g.<group>}:i:<digest>      string  an idempotency key claimed for the
                                   group (idempotency.py; TTL the window)
    <prefix>:{<box>}:i:<token>:<digest>  string  one claimed for a channel
    <prefix>:{g.<group>}:o   hash  history groups only: epoch and newest offset
    <prefix>:{g.<group>}:h   list  history groups only: the stored messages
                                   (history_scripts.py)
    <prefix>:{g.<group>}:pc, :pb  every membership's presence metadata, and
                                   connections per box; with presence events also
                                   :pk (user -> connections), :pg/:px (leaves in
                                   grace) and :ps (change sequence): people_scripts.py

Every key continues `<prefix>:{`, which is what `flush()` matches (`scan_pattern`).
"""

import re
from typing import NamedTuple

CID_LENGTH = 12
_CID = re.compile(r"[0-9a-f]{12}")


class Route(NamedTuple):
    """Where a channel's messages go: its box, and its token inside a process box."""

    box: str
    token: str | None


def route(channel: str) -> Route:
    """The box of `channel`: its process's for layer-made names, else its own."""
    bang = channel.find("!")
    if bang > 0:
        dot = channel.rfind(".", 0, bang)
        if dot >= 0 and bang - dot - 1 == CID_LENGTH:
            cid = channel[dot + 1 : bang]
            if _CID.fullmatch(cid):
                return Route("p." + cid, channel[:dot] + channel[bang:])
    return Route("c." + channel, None)


def channel_name(box: str, token: str | None) -> str:
    """The full channel name for a token of a box (the inverse of `route`)."""
    if token is None or not box.startswith("p."):
        return box[2:]
    return token.replace("!", f".{box[2:]}!", 1)


def box_base(prefix: str, box: str) -> str:
    """The common start of every key of `box` (ends with ':')."""
    return f"{prefix}:{{{box}}}:"


def group_key(prefix: str, group: str) -> str:
    return f"{prefix}:{{g.{group}}}:p"


def group_tag(group: str) -> str:
    return "g." + group


def scan_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern for exactly this prefix's keys: glob characters are
    escaped, and every key continues with ':{' (a prefix holds no braces), so
    prefix 'asgi' matches neither 'asgi2:...' nor 'asgi:chat:{...' keys."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":{*"


def group_scan_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern for the group keys (`group_key`) of this prefix."""
    return scan_pattern(prefix)[:-1] + "g.*}:p"


def encode_item(deadline_ms: int, tokens: str, payload: bytes) -> bytes:
    return b"%d\n%s\n%s" % (deadline_ms, tokens.encode(), payload)


def decode_item(item: bytes) -> tuple[int, list[str], bytes]:
    """(deadline in ms, tokens, payload) of one stored item."""
    deadline, tokens, payload = item.split(b"\n", 2)
    return int(deadline), tokens.decode().split(), payload
