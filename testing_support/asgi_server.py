"""A real ASGI server (daphne, uvicorn or hypercorn) in a subprocess on a free
loopback port, serving the demo project by default, stopped by pid: for the
end-to-end tests and the end-to-end benchmark. Each server binds port 0 and the
runner reads the port it got from the server's startup line.

`stop()` fails (`ServerLogError`) when the server logged an ERROR line or a
traceback that the test did not allow (`allow()`): no client action may write one,
so every end-to-end test checks that for free."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
DEMO_APP = "project.config.asgi:application"
# A logged error: the level word of any server's or Django's log format, or the
# first line of a traceback.
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


class ServerLogError(AssertionError):
    """Raised when a server logged an error or a traceback its test did not allow."""


@dataclass(frozen=True, slots=True)
class ServerKind:
    """How to start one server on 127.0.0.1 (`{port}` in `args`: 0 lets the server
    choose), and the line naming the port it listens on."""

    module: str
    args: tuple[str, ...]
    listening: re.Pattern[str]


SERVER_KINDS: dict[str, ServerKind] = {
    "daphne": ServerKind(
        "daphne",
        ("-b", "127.0.0.1", "-p", "{port}"),
        re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)"),
    ),
    # websockets-sansio is uvicorn's default when `websockets` is installed; named
    # here so that a change of default does not change what the tests exercise.
    "uvicorn": ServerKind(
        "uvicorn",
        (
            *("--host", "127.0.0.1", "--port", "{port}"),
            *("--ws", "websockets-sansio", "--lifespan", "off", "--no-access-log"),
        ),
        re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)"),
    ),
    # `-w 0`: serve in this process; workers would be spawned children that
    # outlive a stop by pid.
    "hypercorn": ServerKind(
        "hypercorn",
        ("-b", "127.0.0.1:{port}", "-w", "0"),
        re.compile(r"Running on http://127\.0\.0\.1:(\d+)"),
    ),
}


def project_env(db_path: Path | None, **extra: str) -> dict[str, str]:
    """The environment a demo process runs with: its own database (None: the
    project's default one), no Redis unless `extra` names one."""
    env = {key: value for key, value in os.environ.items() if key != "AETHER_REDIS_URL"}
    env.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-" + "k" * 40)
    env.update(
        DJANGO_SETTINGS_MODULE="project.config.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    if db_path is not None:
        env["AETHER_DB_PATH"] = str(db_path)
    env.update(extra)
    return env


class AsgiServer:
    """`<kind> <app>` (the demo by default) on 127.0.0.1 and a port of its choosing.
    `launcher` replaces `python -m <kind>` (the benchmark runs it under cProfile)."""

    def __init__(
        self,
        db_path: Path | None,
        app: str = DEMO_APP,
        launcher: tuple[str, ...] | None = None,
        *,
        kind: str = "daphne",
        port: int = 0,
        **env: str,
    ) -> None:
        if kind not in SERVER_KINDS:
            raise ValueError(f"server kind {kind!r} is unknown: use {[*SERVER_KINDS]}")
        self.kind = kind
        self.app = app
        self.launcher = launcher or (sys.executable, "-m", SERVER_KINDS[kind].module)
        self.env = project_env(db_path, **env)
        self.port = port  # 0: the server chooses; else where clients expect it
        self.lines: list[str] = []
        self._port_found = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.allowed: list[re.Pattern[str]] = []
        self._checked = False

    def allow(self, *patterns: str) -> "AsgiServer":
        """Let log lines matching any of `patterns` (regular expressions) pass the
        check at `stop()`, and a traceback right after such a line: for tests that
        provoke an error on purpose (a Redis killed mid-test, uvicorn's own
        traceback for a client's invalid UTF-8)."""
        self.allowed.extend(re.compile(pattern) for pattern in patterns)
        return self

    def errors(self) -> list[str]:
        """The log lines that show an error or a traceback not allowed."""
        found, excused_at = [], -10
        for at, line in enumerate(self.lines):
            if not ERROR_LINE.search(line):
                continue
            if any(pattern.search(line) for pattern in self.allowed):
                excused_at = at
            elif line.startswith("Traceback") and at - excused_at <= 2:
                excused_at = at  # the allowed line's own traceback
            else:
                found.append(line)
        return found

    def check_log(self) -> None:
        """Raise `ServerLogError` with the lines if `errors()` found any."""
        errors = self.errors()
        if errors:
            raise ServerLogError(
                f"{self.kind} logged {len(errors)} error line(s) the test did not "
                f"allow (AsgiServer.allow()):\n{''.join(errors)}\n"
                f"--- whole log ---\n{self.log}"
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self) -> "AsgiServer":
        self.process = subprocess.Popen(
            [
                *self.launcher,
                *(arg.format(port=self.port) for arg in SERVER_KINDS[self.kind].args),
                self.app,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._port_found.wait(STARTUP_SECONDS):
            self.stop(check=False)
            raise TimeoutError(f"{self.kind} did not report its port:\n{self.log}")
        _wait_until_accepting(self.port, STARTUP_SECONDS)
        return self

    def _read_output(self) -> None:
        if self.process is None or self.process.stdout is None:
            return
        kind = SERVER_KINDS[self.kind]
        for line in self.process.stdout:
            self.lines.append(line)
            match = kind.listening.search(line)
            if match and not self._port_found.is_set():
                self.port = int(match.group(1))
                self._port_found.set()

    def stop(self, *, check: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL); with `check`, then fail on any
        error line in its log (`check_log()`)."""
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
        if check and not self._checked:
            self._checked = True
            self.check_log()

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
