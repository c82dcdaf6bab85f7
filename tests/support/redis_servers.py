"""Private redis-server, redis-sentinel and Redis Cluster set-ups for tests that
stop, kill or reconfigure Redis (one process: `testing_support.redis_process`)."""

import contextlib
import random
import socket
import subprocess
from collections.abc import Iterator

from testing_support.binaries import require
from testing_support.redis_process import STARTUP_SECONDS, RedisProcess, wait_until


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
    require("redis-sentinel")  # before starting anything
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
