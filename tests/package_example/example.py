"""Run by tests/test_package.py inside a fresh venv that has the wheel installed:
a consumer and a broadcast on the in-memory layer, with redis-py made unimportable
(the core install does not need it), then an import check of every public name."""

import asyncio
import importlib
import os
import sys


class NoRedis:
    def find_spec(self, name, path=None, target=None):
        if name == "redis" or name.startswith("redis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoRedis())
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"

import django  # noqa: E402

django.setup()

from channels.testing import WebsocketCommunicator  # noqa: E402
from django.core.management import call_command  # noqa: E402

import aether_compat  # noqa: E402
from aether_compat import Channels  # noqa: E402
from aether_compat.consumers import AetherConsumer  # noqa: E402


class RoomConsumer(AetherConsumer):
    groups = ["room:lobby"]


async def main() -> None:
    client = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/")
    connected, _ = await client.connect()
    assert connected
    result = await Channels.group("room:lobby").broadcast("hello")
    assert (result.sent_count, result.failed_count) == (1, 0), result
    assert await client.receive_from() == "hello"
    await client.disconnect()


call_command("check")
asyncio.run(main())
for module_name in ("aether_compat", "aether_compat.layers"):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        if name != "RedisChannelLayer":
            getattr(module, name)
try:
    getattr(aether_compat.layers, "RedisChannelLayer")  # noqa: B009
    raise AssertionError("RedisChannelLayer imported without redis-py")
except ImportError as exc:
    if "aether_compat[redis]" not in str(exc):
        raise
print("installed at", os.path.dirname(aether_compat.__file__))
