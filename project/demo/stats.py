"""Message counters of this server process, for the dashboard's rate and chart.

Counts are per process: with several servers on Redis each dashboard shows the rate
of the process it is connected to (memberships, in contrast, are global).
"""

import time
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 60


@dataclass
class _Second:
    at: int
    messages: int = 0
    deliveries: int = 0
    failures: int = 0


class MessageStats:
    """Messages sent and deliveries made, bucketed by second over the last minute."""

    def __init__(self) -> None:
        self._seconds: deque[_Second] = deque(maxlen=WINDOW_SECONDS + 1)
        self.total_messages = 0

    def record(self, delivered: int, failed: int = 0) -> None:
        bucket = self._bucket(int(time.time()))
        bucket.messages += 1
        bucket.deliveries += delivered
        bucket.failures += failed
        self.total_messages += 1

    def series(self) -> list[dict[str, int]]:
        """One point per second for the last minute, oldest first, gaps as zeros."""
        now = int(time.time())
        by_second = {bucket.at: bucket for bucket in self._seconds}
        points = []
        for at in range(now - WINDOW_SECONDS + 1, now + 1):
            bucket = by_second.get(at, _Second(at))
            points.append(
                {"t": at, "messages": bucket.messages, "deliveries": bucket.deliveries}
            )
        return points

    def _bucket(self, at: int) -> _Second:
        if not self._seconds or self._seconds[-1].at != at:
            self._seconds.append(_Second(at))
        return self._seconds[-1]


stats = MessageStats()
