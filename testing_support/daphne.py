"""A real daphne server in a subprocess on a free loopback port (daphne binds port 0
and reports the port it got), serving the demo project by default, stopped by pid:
for the end-to-end tests and the end-to-end benchmark."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
_LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")


def project_env(db_path: Path | None, **extra: str) -> dict[str, str]:
    """The environment a demo process runs with: its own database (None: the
    project's default one), no Redis unless `extra` names one."""
    env = {key: value for key, value in os.environ.items() if key != "AETHER_REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="project.config.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    if db_path is not None:
        env["AETHER_DB_PATH"] = str(db_path)
    env.update(extra)
    return env


class DaphneServer:
    """`daphne <app>` (the demo by default) on 127.0.0.1 and a port of its choosing,
    or on `port` (a server started again where clients expect it)."""

    def __init__(
        self,
        db_path: Path,
        app: str = "project.config.asgi:application",
        launcher: tuple[str, ...] = (sys.executable, "-m", "daphne"),
        port: int = 0,
        **env: str,
    ) -> None:
        self.app = app
        self.launcher = launcher
        self.env = project_env(db_path, **env)
        self.port = port
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
        command = [*self.launcher, "-b", "127.0.0.1", "-p", str(self.port)]
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
