"""The README's two quickstart commands, as written, on a fresh machine: in a new
venv (no system packages), command 1 installs the demo and starts it (on a free port
instead of 8000), and it answers the home page and a chat page; command 2 installs
the test dependencies and pytest collects the suite. CI runs command 2 verbatim."""

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

import pytest

from testing_support.redis_process import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 300  # command 1 installs the demo's dependencies first
QUICKSTART = re.compile(r"^## Quickstart$.*?^```bash\n(.*?)^```", re.M | re.S)


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the README's Quickstart block, comments left out."""
    block = QUICKSTART.search(readme)
    assert block, "README.md has no Quickstart section with a bash block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def commands() -> list[str]:
    found = quickstart_commands((ROOT / "README.md").read_text())
    assert len(found) == 2, found
    return found


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a shell in a new, empty venv: `python` and `pip` are the
    venv's, and nothing of this test run leaks in."""
    folder = tmp_path_factory.mktemp("quickstart")
    venv_dir = folder / "venv"
    venv.create(venv_dir, with_pip=True)
    drop = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PATH=f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv_dir),
        PIP_QUIET="1",
        PIP_NO_WARN_SCRIPT_LOCATION="1",
        AETHER_DB_PATH=str(folder / "demo.sqlite3"),  # not the checkout's db.sqlite3
    )
    return env


def test_the_ci_script_runs_the_readmes_test_command(commands):
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
    install = commands[1].split(" && ")[0]
    assert install.startswith("pip install -r requirements-dev.txt"), install


@pytest.mark.e2e
@pytest.mark.timeout(STARTUP_SECONDS + 60)
def test_command_1_installs_and_starts_the_demo(commands, fresh_env, tmp_path):
    first = commands[0]
    assert first.endswith("python manage.py runserver"), first
    port = free_port()
    log = tmp_path / "command-1.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", "-c", f"{first} 127.0.0.1:{port}"],
            cwd=ROOT,
            env=fresh_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver's autoreloader child is in its group
        )
    try:
        home = wait_for_page(server, f"http://127.0.0.1:{port}/", log)
        assert "/chat/lobby/" in home
        chat = get(f"http://127.0.0.1:{port}/chat/lobby/")
        assert "#lobby" in chat
    finally:
        stop_group(server)


@pytest.mark.e2e
@pytest.mark.timeout(STARTUP_SECONDS + 60)
def test_command_2_installs_and_collects_the_tests(commands, fresh_env):
    second = commands[1]
    assert second.endswith("python -m pytest"), second
    done = subprocess.run(
        ["bash", "-c", f"{second} --collect-only -q"],
        cwd=ROOT,
        env=fresh_env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = re.search(r"^(\d+) tests collected", done.stdout, re.M)
    assert collected, done.stdout[-3000:]
    assert int(collected.group(1)) > 100


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def wait_for_page(server: subprocess.Popen, url: str, log: Path) -> str:
    """The page at `url` once the server answers; fail with its output if it exits
    or does not answer within STARTUP_SECONDS."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"command 1 exited ({server.returncode}):\n{tail(log)}")
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)  # installing and migrating: nothing to wait on but time
    stop_group(server)
    pytest.fail(f"the demo did not answer {url}:\n{tail(log)}")


def stop_group(server: subprocess.Popen) -> None:
    """Stop the shell we started and everything in its process group."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)


def tail(log: Path) -> str:
    return log.read_text()[-3000:]
