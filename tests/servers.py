"""Real daphne servers for end-to-end and browser tests: the demo project in a
subprocess on a free loopback port (daphne binds port 0 and reports the port it
got), with its own migrated SQLite database and demo users, stopped by pid."""

import contextlib
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
PASSWORD = "e2e-password"
_LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")


def project_env(db_path: Path, **extra: str) -> dict[str, str]:
    """The environment a demo process runs with: its own database, no Redis
    unless `extra` names one."""
    env = {key: value for key, value in os.environ.items() if key != "AETHER_REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="project.config.settings",
        AETHER_DB_PATH=str(db_path),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


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


class DaphneServer:
    """`daphne <app>` (the demo by default) on 127.0.0.1 and a port of its choosing."""

    def __init__(
        self,
        db_path: Path,
        app: str = "project.config.asgi:application",
        launcher: tuple[str, ...] = (sys.executable, "-m", "daphne"),
        **env: str,
    ) -> None:
        self.app = app
        self.launcher = launcher
        self.env = project_env(db_path, **env)
        self.port = 0
        self.lines: list[str] = []
        self._port_found = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self) -> "DaphneServer":
        command = [*self.launcher, "-b", "127.0.0.1", "-p", "0"]
        self.process = subprocess.Popen(
            [*command, self.app],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._port_found.wait(STARTUP_SECONDS):
            self.stop()
            raise TimeoutError(f"daphne did not report its port:\n{self.log}")
        _wait_until_accepting(self.port, STARTUP_SECONDS)
        return self

    def _read_output(self) -> None:
        if self.process is None or self.process.stdout is None:
            return
        for line in self.process.stdout:
            self.lines.append(line)
            match = _LISTENING.search(line)
            if match and not self._port_found.is_set():
                self.port = int(match.group(1))
                self._port_found.set()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def tracebacks(self) -> list[str]:
        """Lines of the server log that show an unhandled exception."""
        return [line for line in self.lines if "Traceback" in line]


def _wait_until_accepting(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def daphne_server(db_path: Path | None = None, **env: str) -> Iterator[DaphneServer]:
    """A running demo server; with no `db_path`, a fresh prepared database."""
    with contextlib.ExitStack() as stack:
        if db_path is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            db_path = Path(folder) / "demo.sqlite3"
            prepare_database(db_path)
        server = DaphneServer(db_path, **env).start()
        stack.callback(server.stop)
        yield server


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

    def logout(self) -> None:
        self.post("/logout/", {})

    def ws_headers(self) -> dict[str, str]:
        """Headers a page of this site would send when opening a WebSocket."""
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        headers = {"Origin": self.base_url}
        if cookies:
            headers["Cookie"] = cookies
        return headers


# Several servers at once (reliability tests, issue 6)


@contextlib.contextmanager
def daphne_servers(
    db_path: Path, count: int, **env: str
) -> Iterator[list[DaphneServer]]:
    """`count` demo servers on one database, started side by side (each takes a
    second or two to import Django), all stopped at the end."""
    servers = [DaphneServer(db_path, **env) for _ in range(count)]
    threads = [threading.Thread(target=_start_quietly, args=(s,)) for s in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(STARTUP_SECONDS + 5)
        for server in servers:
            if not server.port or server.process is None:
                raise TimeoutError(f"a daphne server did not start:\n{server.log}")
        yield servers
    finally:
        for server in servers:
            server.stop()


def _start_quietly(server: DaphneServer) -> None:
    with contextlib.suppress(Exception):  # daphne_servers() reports who failed
        server.start()


def copy_database(template: Path, folder: Path) -> Path:
    """A copy of a prepared database, so that each test starts from the same one
    without migrating again."""
    copy = folder / "demo.sqlite3"
    copy.write_bytes(template.read_bytes())
    return copy
