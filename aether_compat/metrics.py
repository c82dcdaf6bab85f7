"""Prometheus metrics of this process, with `prometheus_client` (the `metrics`
extra); without it, or with `AETHER_METRICS = False`, every hook here is a no-op.

Two families that never count the same thing twice:
- what this process *sent* (`aether_broadcast_*`, `aether_sends_total`): summed
  from the `SendResult`s the facade returned, so they equal those results exactly;
- what this process *delivered to its own sockets* (`aether_socket_*`,
  `aether_session_deadline_misses_total`), whoever sent it.
Gauges of the process's layer (connections, memberships, Redis errors) are read
at scrape time (`LayerCollector`), so a broadcast pays nothing for them.
"""

from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
except ImportError:  # the in-memory layer works without the extra
    prometheus_client = None

NS = "aether"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5)


class _Metrics:
    """The metric objects, made once per process on the default registry."""

    def __init__(self) -> None:
        pc = prometheus_client
        self.broadcasts = pc.Counter(
            f"{NS}_broadcasts", "Broadcasts this process made (duplicates excluded)"
        )
        self.deliveries = pc.Counter(
            f"{NS}_broadcast_deliveries",
            "Members of this process's broadcasts: sent, or failed by reason",
            ["outcome", "reason"],
        )
        self.sent = self.deliveries.labels("sent", "")
        self.excluded = pc.Counter(
            f"{NS}_broadcast_excluded", "Channels this process's broadcasts left out"
        )
        self.duplicates = pc.Counter(
            f"{NS}_broadcast_duplicates",
            "Broadcasts not sent: their idempotency key was used within the window",
        )
        self.deferred = pc.Counter(
            f"{NS}_broadcast_deferred", "Sends deferred to a transaction's commit"
        )
        self.latency = pc.Histogram(
            f"{NS}_broadcast_seconds",
            "Time from a broadcast's call to its SendResult",
            buckets=LATENCY_BUCKETS,
        )
        self.sends = pc.Counter(
            f"{NS}_sends", "Direct sends to one channel", ["outcome"]
        )
        self.frames = pc.Counter(
            f"{NS}_socket_frames", "Frames this process gave to its WebSockets"
        )
        self.bytes = pc.Counter(
            f"{NS}_socket_bytes", "Bytes this process gave to its WebSockets"
        )
        self.refusals = pc.Counter(
            f"{NS}_socket_refusals",
            "Frames refused because the client was not reading (outbound limit)",
        )
        self.deadline_misses = pc.Counter(
            f"{NS}_session_deadline_misses",
            "Session deliveries that missed delivery_timeout",
        )
        self.resumes = pc.Counter(
            f"{NS}_history_resumes",
            "Joins that named a last position: recovered (the gap replayed) or not",
            ["recovered"],
        )
        self.replayed = pc.Counter(
            f"{NS}_history_replayed_messages",
            "Messages replayed from history into resumed connections",
        )
        self.presence = pc.Counter(
            f"{NS}_presence_frames",
            "Presence frames this process wrote to its WebSockets: state or diff",
            ["kind"],
        )
        pc.REGISTRY.register(LayerCollector())


_state: dict[str, Any] = {}


def active() -> "_Metrics | None":
    """The metrics, or None when they are off or prometheus_client is missing."""
    try:
        return _state["m"]
    except KeyError:
        pass
    on = prometheus_client is not None and enabled_setting()
    if on and "made" not in _state:
        _state["made"] = _Metrics()  # registered once per process, for good
    _state["m"] = _state["made"] if on else None
    return _state["m"]


def enabled_setting() -> bool:
    if not settings.configured:  # a layer used outside a Django project
        return True
    return getattr(settings, "AETHER_METRICS", True) is True


def _forget(setting: str, **kwargs: Any) -> None:
    if setting == "AETHER_METRICS":
        _state.pop("m", None)


setting_changed.connect(_forget, dispatch_uid=__name__)


# Hooks: called on every broadcast and frame; each is one dict lookup when off.


def broadcast_done(result: Any, seconds: float, exclude: Iterable[str]) -> None:
    m = active()
    if m is None:
        return
    if result.duplicate:
        m.duplicates.inc()
        return
    m.broadcasts.inc()
    m.latency.observe(seconds)
    if result.sent_count:
        m.sent.inc(result.sent_count)
    for error in result.errors:
        m.deliveries.labels("failed", reason(error)).inc()
    if missing := result.failed_count - len(result.errors):
        m.deliveries.labels("failed", "unknown").inc(missing)
    if exclude:
        m.excluded.inc(len(tuple(exclude)))


def send_done(ok: bool, duplicate: bool = False) -> None:
    if (m := active()) is not None:
        m.sends.labels("duplicate" if duplicate else "sent" if ok else "failed").inc()


def resumed(recovered: bool, replayed: int) -> None:
    if (m := active()) is not None:
        m.resumes.labels("true" if recovered else "false").inc()
        m.replayed.inc(replayed)


def presence_frame(kind: str) -> None:
    if (m := active()) is not None:
        m.presence.labels(kind).inc()


def deferred() -> None:
    if (m := active()) is not None:
        m.deferred.inc()


def socket_frame(size: int) -> None:
    if (m := active()) is not None:
        m.frames.inc()
        m.bytes.inc(size)


def socket_refused() -> None:
    if (m := active()) is not None:
        m.refusals.inc()


def deadline_missed(count: int) -> None:
    if (m := active()) is not None:
        m.deadline_misses.inc(count)


def reason(error: BaseException) -> str:
    """The label of a failure: its exception class (ChannelFull, ...)."""
    return type(error).__name__


class LayerCollector:
    """Scrape-time figures of the facade's layer in this process."""

    def describe(self) -> list[Any]:
        return []  # registering must not read the layer (Django may not be ready)

    def collect(self) -> Iterator[Any]:
        if _state.get("m") is None:
            return
        layer = _layer()
        if layer is None:
            return
        sessions = getattr(layer, "sessions", None)
        connections = len(sessions) if sessions is not None else 0
        yield _gauge("connections", "Open connections (sessions)", connections)
        count = getattr(layer, "membership_count", None)
        if count is not None:
            yield _gauge("group_memberships", "Group memberships here", count())
        stats = getattr(layer, "stats", None)
        if stats is not None:
            for name in ("redis_errors", "failed_sends", "expired_unread"):
                family = CounterMetricFamily(
                    f"{NS}_redis_{name.removeprefix('redis_')}",
                    f"Redis layer: {name.replace('_', ' ')}",
                )
                family.add_metric([], getattr(stats, name, 0))
                yield family


def _gauge(name: str, doc: str, value: int) -> Any:
    family = GaugeMetricFamily(f"{NS}_{name}", doc)
    family.add_metric([], value)
    return family


def _layer() -> Any:
    from .facade import Channels  # the facade imports this module

    try:
        return Channels.layer
    except Exception:
        return None
