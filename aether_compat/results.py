"""Outcome of one broadcast: how many members got it, how many did not, and why."""

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class SendResult:
    """Counts of one delivery.

    `sent_count` members were handed the message (queued within capacity, or passed to
    a registered sender that returned); `failed_count` were not, each with one exception
    in `errors`. Results of several deliveries (shards, processes) add up with `+`.
    `duplicate` is True when the send carried an idempotency key already used for
    the same target within the window: nothing was delivered, on purpose.
    """

    sent_count: int = 0
    failed_count: int = 0
    errors: tuple[BaseException, ...] = ()
    duplicate: bool = False

    def __add__(self, other: Self) -> Self:
        if not isinstance(other, SendResult):
            return NotImplemented
        return type(self)(
            self.sent_count + other.sent_count,
            self.failed_count + other.failed_count,
            self.errors + other.errors,
            self.duplicate or other.duplicate,
        )

    @property
    def total(self) -> int:
        """Members the delivery was attempted to."""
        return self.sent_count + self.failed_count

    @property
    def ok(self) -> bool:
        """True when no member failed (an empty group is ok)."""
        return self.failed_count == 0

    @classmethod
    def of(cls, sent: int, errors: list[BaseException]) -> Self:
        """A result with `sent` successes and one failure per error."""
        return cls(sent, len(errors), tuple(errors))
