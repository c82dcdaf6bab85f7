"""How long one Prometheus scrape takes with 10,000 members in the process:
10,000 sessions (connections) in 100 groups of 100 on the in-memory layer.

    DJANGO_SETTINGS_MODULE=tests.settings python -m bench.metrics_bench
"""

import os
import statistics
import time

from asgiref.sync import async_to_sync


def scrape_times(members: int = 10_000, scrapes: int = 20) -> list[float]:
    """Seconds each of `scrapes` scrapes of `metrics_view` took."""
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory, override_settings

    from aether_compat import Channels
    from aether_compat.layers import InMemoryChannelLayer
    from aether_compat.metrics_view import metrics_view

    layer = InMemoryChannelLayer()
    Channels.configure(layer)

    async def fill() -> None:
        async def sender(event: dict) -> None:
            return None

        for i in range(members):
            channel = await layer.new_channel()
            await layer.register_session(channel, sender)
            await layer.group_add(f"room:{i % 100}", channel)
        await Channels.group("room:0").broadcast("warm up")

    async_to_sync(fill)()
    request = RequestFactory().get("/metrics", HTTP_AUTHORIZATION="Bearer bench")
    request.user = AnonymousUser()
    times = []
    try:
        with override_settings(AETHER_METRICS_TOKEN="bench"):
            for _ in range(scrapes):
                started = time.perf_counter()
                response = metrics_view(request)
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"scrape answered {response.status_code}")
    finally:
        Channels.configure(None)
    return times


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    times = scrape_times()
    print(
        f"scrape with 10,000 members: median {statistics.median(times) * 1000:.2f} ms, "
        f"max {max(times) * 1000:.2f} ms over {len(times)} scrapes"
    )


if __name__ == "__main__":
    main()
