"""The Aether message envelope (`ChannelMessage`) and the layer events that carry
facade broadcasts between processes."""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired, Self, TypedDict

AETHER_MESSAGE = "aether.message"


def now_ms() -> int:
    """The current time in Unix milliseconds, as Aether timestamps are."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A structured message; its JSON has exactly the keys of the Aether docs
    (`type`, `payload`, `sender`, `target`, `timestamp`), so Aether clients read it."""

    type: str
    payload: str
    sender: str | None = None
    target: str | None = None
    timestamp: int = field(default_factory=now_ms)

    def __post_init__(self) -> None:
        _check_fields(self.type, self.payload, self.sender, self.target, self.timestamp)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse Aether JSON; raise `ValueError` saying what is wrong with it."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"ChannelMessage JSON is malformed: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"ChannelMessage JSON must be an object, got {type(data).__name__}"
            )
        missing = [key for key in _KEYS if key not in data]
        if missing:
            raise ValueError(f"ChannelMessage JSON lacks key(s): {', '.join(missing)}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ValueError(f"ChannelMessage JSON has unknown key(s): {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_KEYS = ("type", "payload", "sender", "target", "timestamp")


def _check_fields(type_: Any, payload: Any, sender: Any, target: Any, ts: Any) -> None:
    for name, value, optional in (
        ("type", type_, False),
        ("payload", payload, False),
        ("sender", sender, True),
        ("target", target, True),
    ):
        if not isinstance(value, str) and not (optional and value is None):
            wanted = "a string or null" if optional else "a string"
            raise TypeError(
                f"ChannelMessage.{name} must be {wanted}, got {type(value).__name__}"
            )
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise TypeError(
            f"ChannelMessage.timestamp must be an integer (Unix ms), "
            f"got {type(ts).__name__}"
        )


class AetherTextEvent(TypedDict):
    """A facade text broadcast as it travels on the channel layer; `group` names
    the group it was broadcast to (v1 clients see it), absent for direct sends."""

    type: Literal["aether.message"]
    text: str
    sender: NotRequired[str | None]
    group: NotRequired[str]


class AetherBytesEvent(TypedDict):
    """A facade binary broadcast as it travels on the channel layer."""

    type: Literal["aether.message"]
    bytes: bytes
    sender: NotRequired[str | None]
    group: NotRequired[str]


def text_event(
    text: str, sender: str | None = None, group: str | None = None
) -> AetherTextEvent:
    event: AetherTextEvent = {"type": AETHER_MESSAGE, "text": text, "sender": sender}
    if group is not None:
        event["group"] = group
    return event


def bytes_event(
    data: bytes, sender: str | None = None, group: str | None = None
) -> AetherBytesEvent:
    event: AetherBytesEvent = {"type": AETHER_MESSAGE, "bytes": data, "sender": sender}
    if group is not None:
        event["group"] = group
    return event
