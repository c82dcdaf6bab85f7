"""Prometheus metrics: the broadcast counters equal the summed SendResults of the
process exactly, the view is protected and can be turned off, multiprocess mode
sums the workers, and nothing needs prometheus_client when it is absent."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory, override_settings
from prometheus_client import REGISTRY

from aether_compat import Channels, SendResult, metrics
from aether_compat.metrics_view import metrics_view
from bench.metrics_bench import scrape_times

ROOT = Path(__file__).resolve().parent.parent


def snapshot() -> dict[str, float]:
    """Every aether_* broadcast sample of this process, by name and labels."""
    values: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name.startswith("aether_broadcast"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def test_counters_equal_the_summed_results(make_layer):
    """1,000 broadcasts to 10 members, one of them stalled (capacity 5, never
    read), with some exclusions and repeated keys: every counter moves by exactly
    what the returned SendResults add up to."""
    layer = make_layer(capacity=2000, channel_capacity={"stalled*": 5})
    Channels.configure(layer)
    metrics.active()
    for _ in range(9):
        await layer.group_add("room:m", await layer.new_channel())
    await layer.group_add("room:m", "stalled")
    before = snapshot()
    total, duplicates, excluded, calls = SendResult(), 0, 0, 0
    group = Channels.group("room:m")
    for i in range(1000):
        exclude = ["stalled"] if i % 100 == 0 else []
        key = "same-key" if i % 250 == 1 else None
        result = await group.broadcast(f"m{i}", exclude=exclude, idempotency_key=key)
        if result.duplicate:
            duplicates += 1
            continue
        calls += 1
        excluded += len(exclude)
        total += result
    after = snapshot()
    reasons: dict[str, int] = {}
    for error in total.errors:
        reasons[type(error).__name__] = reasons.get(type(error).__name__, 0) + 1
    assert total.failed_count > 900  # the stalled member failed almost every time
    assert (
        delta(before, after, "aether_broadcast_deliveries_total{outcome=sent,reason=}")
        == total.sent_count
    )
    for name, count in reasons.items():
        key = f"aether_broadcast_deliveries_total{{outcome=failed,reason={name}}}"
        assert delta(before, after, key) == count
    failed = sum(
        delta(before, after, k)
        for k in after
        if k.startswith("aether_broadcast_deliveries_total{outcome=failed")
    )
    assert failed == total.failed_count
    assert delta(before, after, "aether_broadcasts_total{}") == calls
    assert (
        delta(before, after, "aether_broadcast_duplicates_total{}") == duplicates == 3
    )
    assert delta(before, after, "aether_broadcast_excluded_total{}") == excluded == 10
    assert delta(before, after, "aether_broadcast_seconds_count{}") == calls


def _request(user: Any = None, token: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    request = RequestFactory().get("/metrics", **headers)
    request.user = user or AnonymousUser()
    return request


class _Staff:
    is_active = True
    is_staff = True


def test_the_view_needs_staff_or_the_token(memory_facade):
    with override_settings(AETHER_METRICS_TOKEN="s3cret"):
        assert metrics_view(_request()).status_code == 401
        assert metrics_view(_request(token="wrong")).status_code == 401
        response = metrics_view(_request(token="s3cret"))
        assert response.status_code == 200
        assert b"aether_broadcasts_total" in response.content
        assert b"aether_connections" in response.content
    assert metrics_view(_request(_Staff())).status_code == 200
    with override_settings(AETHER_METRICS_TOKEN=None):
        assert metrics_view(_request(token="None")).status_code == 401


def test_metrics_off_records_nothing_and_the_view_is_404(memory_facade):
    from django.http import Http404

    with override_settings(AETHER_METRICS=False):
        before = REGISTRY.get_sample_value("aether_broadcasts_total") or 0
        Channels.sync.group("room:off").broadcast("x")
        assert (REGISTRY.get_sample_value("aether_broadcasts_total") or 0) == before
        with pytest.raises(Http404):
            metrics_view(_request(_Staff()))
    assert metrics.active() is not None


@pytest.fixture
def memory_facade() -> None:
    from aether_compat.layers import InMemoryChannelLayer

    Channels.configure(InMemoryChannelLayer())
    metrics.active()


WORKER = """
import django
django.setup()
from aether_compat import Channels
from aether_compat.layers import InMemoryChannelLayer
layer = InMemoryChannelLayer(capacity=1000)
Channels.configure(layer)
from asgiref.sync import async_to_sync
channel = async_to_sync(layer.new_channel)()
async_to_sync(layer.group_add)("room:w", channel)
for _ in range({n}):
    Channels.sync.group("room:w").broadcast("x")
"""

SCRAPE = """
import django
django.setup()
from django.test import RequestFactory, override_settings
from aether_compat.metrics_view import metrics_view
request = RequestFactory().get("/metrics", HTTP_AUTHORIZATION="Bearer t")
from django.contrib.auth.models import AnonymousUser
request.user = AnonymousUser()
with override_settings(AETHER_METRICS_TOKEN="t"):
    print(metrics_view(request).content.decode())
"""


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_sums_the_workers(tmp_path):
    """Two worker processes with PROMETHEUS_MULTIPROC_DIR broadcast 30 and 12
    times; a scrape from a third process shows 42 broadcasts and 42 sent."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WORKER.format(n=n))],
            cwd=ROOT,
            env=env,
        )
        for n in (30, 12)
    ]
    assert [w.wait(120) for w in workers] == [0, 0]
    text = _python(SCRAPE, env)
    assert "aether_broadcasts_total 42.0" in text
    assert 'aether_broadcast_deliveries_total{outcome="sent",reason=""} 42.0' in text


def test_the_in_memory_layer_needs_no_prometheus_client():
    """With prometheus_client unimportable, broadcasts work and metrics are off;
    asking for them explicitly is a warning at check time (W001)."""
    code = """
    import sys
    sys.modules["prometheus_client"] = None
    import django
    django.setup()
    from aether_compat import Channels, metrics
    from aether_compat.layers import InMemoryChannelLayer
    Channels.configure(InMemoryChannelLayer())
    print(Channels.sync.group("room:x").broadcast("x").total, metrics.active())
    from django.core.checks import run_checks
    from django.test import override_settings
    with override_settings(AETHER_METRICS=True):
        print(*[m.id for m in run_checks(tags=["aether_compat"])])
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    assert _python(code, env).split() == ["0", "None", "aether_compat.W001"]


def test_a_scrape_with_10000_members_takes_under_50_ms():
    """bench/metrics_bench.py: the median of 20 scrapes."""
    times = scrape_times(members=10_000, scrapes=20)
    median = sorted(times)[len(times) // 2]
    assert median < 0.050, f"median scrape {median * 1000:.1f} ms"
