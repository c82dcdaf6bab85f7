"""The package's Django app: add "aether_compat" to INSTALLED_APPS for its
management commands and its system checks (`checks.py`)."""

from django.apps import AppConfig


class AetherCompatConfig(AppConfig):
    name = "aether_compat"
    verbose_name = "Aether Channels"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
