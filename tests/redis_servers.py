"""Private redis-server, redis-sentinel and Redis Cluster processes for tests that
stop, kill or reconfigure Redis: each on a free loopback port, waited for with a
deadline, and stopped by pid. The shared Redis at 6379 is never touched."""

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

STARTUP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if all(_bindable(p) for p in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
        self.dir = Path(tempfile.mkdtemp(prefix="aether-redis-"))
        if self.sentinel:
            config = self.dir / "sentinel.conf"
            config.write_text("\n".join(self.args) + "\n")
            command = ["redis-sentinel", str(config), "--port", str(self.port)]
        else:
            command = ["redis-server", "--save", "", "--appendonly", "no", *self.args]
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


@contextlib.contextmanager
def redis_server(*args: str) -> Iterator[RedisProcess]:
    server = RedisProcess(*args).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def sentinel_setup(master_name: str = "aether") -> Iterator[dict]:
    """A master, one replica and one sentinel watching them (quick failover)."""
    master = RedisProcess().start()
    replica = RedisProcess("--replicaof", "127.0.0.1", str(master.port)).start()
    sentinel = RedisProcess(
        f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1",
        f"sentinel down-after-milliseconds {master_name} 1000",
        f"sentinel failover-timeout {master_name} 3000",
        sentinel=True,
    )
    try:
        sentinel.start()
        wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            STARTUP_SECONDS,
            "replica in sync",
        )
        yield {"master": master, "replica": replica, "sentinel": sentinel}
    finally:
        for process in (sentinel, replica, master):
            process.stop()


@contextlib.contextmanager
def redis_cluster(nodes: int = 3) -> Iterator[list[RedisProcess]]:
    """`nodes` masters in one Redis Cluster covering every slot."""
    servers = [
        RedisProcess(
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            port=free_cluster_port(),
        )
        for _ in range(nodes)
    ]
    try:
        for server in servers:
            server.start()
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        wait_until(
            lambda: all(
                s.client().cluster("info")["cluster_state"] == "ok" for s in servers
            ),
            STARTUP_SECONDS,
            "cluster state ok",
        )
        yield servers
    finally:
        for server in servers:
            server.stop()
