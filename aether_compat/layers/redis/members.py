"""Reading a group's members from Redis: presence as `group_members` reports it."""

from typing import Any

from .connections import Connections, script
from .group_scripts import GROUP_BOXES, GROUP_MEMBERS, MEMBERS_PROC
from .keys import box_base, channel_name, group_key, group_tag


async def read_members(
    connections: Connections, prefix: str, group: str, cutoff: int
) -> set[str]:
    """The members of `group` joined since `cutoff`, in processes that are alive:
    one script on one server; elsewhere the group's boxes, then each process's."""
    procs = group_key(prefix, group)
    if connections.one_server:
        args = [prefix, group, cutoff]
        (flat,) = await connections.execute(
            [(group_tag(group), script(GROUP_MEMBERS, [procs], args))]
        )
        return _members_from_flat(flat)
    (boxes,) = await connections.execute(
        [(group_tag(group), script(GROUP_BOXES, [procs], [cutoff]))]
    )
    boxes = [box.decode() for box in boxes]
    tagged = [
        (
            box,
            script(
                MEMBERS_PROC,
                [box_base(prefix, box) + "l"],
                [box_base(prefix, box), group, cutoff],
            ),
        )
        for box in boxes
        if box.startswith("p.")
    ]
    found = {channel_name(box, None) for box in boxes if box.startswith("c.")}
    results = await connections.execute(tagged)
    for (box, _), tokens in zip(tagged, results, strict=True):
        found.update(channel_name(box, t.decode()) for t in tokens or ())
    return found


def _members_from_flat(flat: list[Any]) -> set[str]:
    found: set[str] = set()
    index = 0
    while index < len(flat):
        box, count = flat[index].decode(), flat[index + 1]
        tokens = flat[index + 2 : index + 2 + count]
        if box.startswith("c."):
            found.add(channel_name(box, None))
        found.update(channel_name(box, t.decode()) for t in tokens)
        index += 2 + count
    return found
