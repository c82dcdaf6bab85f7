"""The daphne runner under its older name; `asgi_server.AsgiServer` runs any kind."""

from pathlib import Path

from testing_support.asgi_server import (
    DEMO_APP,
    ROOT,
    STARTUP_SECONDS,
    AsgiServer,
    project_env,
)

__all__ = ["ROOT", "STARTUP_SECONDS", "DaphneServer", "project_env"]


class DaphneServer(AsgiServer):
    """`AsgiServer(kind="daphne")`."""

    def __init__(
        self,
        db_path: Path | None,
        app: str = DEMO_APP,
        launcher: tuple[str, ...] | None = None,
        port: int = 0,
        **env: str,
    ) -> None:
        super().__init__(db_path, app, launcher, kind="daphne", port=port, **env)
