"""The demo project behind real ASGI servers for end-to-end and browser tests:
its own migrated SQLite database with the demo users, one server or several on it
(daphne, uvicorn or hypercorn: `SERVERS` parametrises a test over them), and a
logged-in HTTP session (`Browser`). One server process:
`testing_support.asgi_server`."""

import contextlib
import http.cookiejar
import re
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing_support.asgi_server import (
    ROOT,
    SERVER_KINDS,
    STARTUP_SECONDS,
    AsgiServer,
    project_env,
)

PASSWORD = "e2e-password"
SERVERS = [pytest.param(kind, id=kind) for kind in SERVER_KINDS]
"""Every server kind, for `pytest.mark.parametrize("kind", SERVERS)`."""


def prepare_database(db_path: Path) -> None:
    """Migrate a fresh database and create the demo users with `PASSWORD`."""
    env = project_env(db_path)
    for args in (["migrate", "-v", "0"], ["demo_users", "--password", PASSWORD]):
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )


@contextlib.contextmanager
def asgi_server(
    kind: str = "daphne", db_path: Path | None = None, **env: str
) -> Iterator[AsgiServer]:
    """A running demo server of `kind`; with no `db_path`, a fresh prepared
    database."""
    with contextlib.ExitStack() as stack:
        if db_path is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            db_path = Path(folder) / "demo.sqlite3"
            prepare_database(db_path)
        server = AsgiServer(db_path, kind=kind, **env).start()
        with stopped(server):
            yield server


@contextlib.contextmanager
def stopped(server: AsgiServer) -> Iterator[AsgiServer]:
    """Stop `server` on the way out; when the block succeeded, fail on any error
    its log shows that the test did not allow (`AsgiServer.allow()`)."""
    try:
        yield server
    except BaseException:
        server.stop(check=False)
        raise
    server.stop()


def daphne_server(
    db_path: Path | None = None, **env: str
) -> contextlib.AbstractContextManager[AsgiServer]:
    """`asgi_server("daphne", ...)`, for tests that need no other server."""
    return asgi_server("daphne", db_path, **env)


class Browser:
    """A logged-in HTTP session (cookie jar) against a demo server, for tests that
    need a Django session cookie to open WebSockets as a user."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar)
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, fields: dict[str, str]) -> str:
        if self.cookie("csrftoken") is None:
            self.get("/login/")
        data = urllib.parse.urlencode(
            {**fields, "csrfmiddlewaretoken": self.cookie("csrftoken") or ""}
        ).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Referer": self.base_url + path}
        )
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()

    def login(self, username: str, password: str = PASSWORD) -> "Browser":
        self.post("/login/", {"username": username, "password": password})
        if self.cookie("sessionid") is None:
            raise AssertionError(f"login as {username!r} failed")
        return self

    def create_room(self, name: str) -> str:
        """Create chat room `name` as this signed-in user, as the home page's form
        does (the only way a room comes to exist); the page it lands on."""
        return self.post("/rooms/new/", {"name": name})

    def logout(self) -> None:
        self.post("/logout/", {})

    def pk(self) -> int:
        """The logged-in user's primary key, as the notifications page shows it."""
        return int(re.search(r"user:(\d+)", self.get("/notifications/")).group(1))

    def ws_headers(self) -> dict[str, str]:
        """Headers a page of this site would send when opening a WebSocket."""
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        headers = {"Origin": self.base_url}
        if cookies:
            headers["Cookie"] = cookies
        return headers


# Several servers at once (reliability tests, issue 6)


@contextlib.contextmanager
def asgi_servers(
    db_path: Path,
    count: int,
    kind: str = "daphne",
    launcher: tuple[str, ...] | None = None,
    **env: str,
) -> Iterator[list[AsgiServer]]:
    """`count` demo servers of `kind` on one database, started side by side (each
    takes a second or two to import Django), all stopped at the end. `launcher`
    as for `AsgiServer` (it may carry the server's own options)."""
    servers = [
        AsgiServer(db_path, kind=kind, launcher=launcher, **env) for _ in range(count)
    ]
    threads = [threading.Thread(target=_start_quietly, args=(s,)) for s in servers]
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(stopped(server))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(STARTUP_SECONDS + 5)
        for server in servers:
            if not server.port or server.process is None:
                raise TimeoutError(f"a {kind} server did not start:\n{server.log}")
        yield servers


def daphne_servers(
    db_path: Path, count: int, *options: str, **env: str
) -> contextlib.AbstractContextManager[list[AsgiServer]]:
    """`asgi_servers(db_path, count, "daphne", ...)`; `options` are daphne's."""
    launcher = (sys.executable, "-m", "daphne", *options) if options else None
    return asgi_servers(db_path, count, "daphne", launcher, **env)


def _start_quietly(server: AsgiServer) -> None:
    with contextlib.suppress(Exception):  # asgi_servers() reports who failed
        server.start()


def copy_database(template: Path, folder: Path) -> Path:
    """A copy of a prepared database, so that each test starts from the same one
    without migrating again."""
    copy = folder / "demo.sqlite3"
    copy.write_bytes(template.read_bytes())
    return copy
