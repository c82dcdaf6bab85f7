"""A private redis-server (or redis-sentinel) on a free loopback port, waited for
with a deadline and stopped by pid: for tests that stop, kill or reconfigure Redis
and for the Redis benchmark. The shared Redis at 6379 is never touched."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from testing_support.binaries import require

STARTUP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, seconds: float, what: str) -> None:
    """Call `check` until it returns true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {seconds} s (last error: {last})")


class RedisProcess:
    """One redis-server (or redis-sentinel) on 127.0.0.1:`port`, no persistence."""

    def __init__(self, *args: str, port: int | None = None, sentinel: bool = False):
        self.port = port or free_port()
        self.args = args
        self.sentinel = sentinel
        self.dir: Path | None = None  # made at start, removed at stop
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def start(self) -> "RedisProcess":
        program = require("redis-sentinel" if self.sentinel else "redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="aether-redis-"))
        if self.sentinel:
            config = self.dir / "sentinel.conf"
            config.write_text("\n".join(self.args) + "\n")
            command = [program, str(config), "--port", str(self.port)]
        else:
            command = [program, "--save", ""]
            command += ["--appendonly", "no", *self.args]
            command += ["--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--dir", str(self.dir)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, STARTUP_SECONDS, f"redis on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis on port {self.port} exited at startup")
        with self.client() as client:
            return bool(client.ping())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(10)
        self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
