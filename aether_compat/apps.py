"""The package's Django app: add "aether_compat" to INSTALLED_APPS for its
management commands, its system checks (`checks.py`), and sockets that close when
their session logs out (`authority.py`)."""

import logging
from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out

logger = logging.getLogger(__name__)


class AetherCompatConfig(AppConfig):
    name = "aether_compat"
    verbose_name = "Aether Channels"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)

        user_logged_out.connect(close_sockets_of_session, dispatch_uid=__name__)


def close_sockets_of_session(sender: Any, request: Any, **kwargs: Any) -> None:
    """A logout closes the WebSockets opened with that session, on every server.
    Runs in the logout's thread (sync and async views alike)."""
    from .facade import Channels

    key = getattr(getattr(request, "session", None), "session_key", None)
    if not key:
        return
    try:
        Channels.sync.disconnect_session(key, reason="logged out")
    except Exception:  # the logout itself must not fail for it
        logger.warning("could not close the sockets of a logged-out session")
