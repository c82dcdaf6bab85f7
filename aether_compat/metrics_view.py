"""The Prometheus scrape endpoint: mount `metrics_view` in your URLconf.

Staff users may read it in a browser; Prometheus sends
`Authorization: Bearer <AETHER_METRICS_TOKEN>`. With `AETHER_METRICS = False` (or
without `prometheus_client`) it answers 404. Under prometheus_client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR` set before the workers start) the
counters and histograms are summed over every worker of the server; the layer
gauges are those of the worker that answered.
"""

import os

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare

from . import metrics


def metrics_view(request: HttpRequest) -> HttpResponse:
    """This process's metrics (all workers' in multiprocess mode), as text."""
    if metrics.active() is None:
        raise Http404(
            "metrics are off (AETHER_METRICS) or prometheus_client is missing"
        )
    if not _allowed(request):
        response = HttpResponse(
            "metrics need a staff login or the bearer token", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = getattr(settings, "AETHER_METRICS_TOKEN", None)
    header = request.headers.get("Authorization", "")
    return bool(token) and constant_time_compare(header, f"Bearer {token}")


def _registry() -> object:
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(metrics.LayerCollector())
    return registry
