"""A missing Chromium or redis-sentinel fails its tests with one line saying what to
install: in a pytest run of its own, a fixture that needs a program that is not
there fails (never skips) with that line and no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from testing_support.binaries import MissingBinary, require
from testing_support.redis_process import RedisProcess

ROOT = Path(__file__).resolve().parent.parent
NEEDS_A_MISSING_PROGRAM = """
import pytest
from testing_support.binaries import DEBIAN_PACKAGES, require
from testing_support.redis_process import RedisProcess

DEBIAN_PACKAGES["no-such-program-aether"] = "aether-pkg"

@pytest.fixture
def program():
    return require("no-such-program-aether")

def test_in_a_fixture(program):
    pass

def test_in_the_test(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    RedisProcess(sentinel=True).start()
"""


def test_require_names_the_debian_package():
    with pytest.raises(MissingBinary) as missing:
        require("/nonexistent/chromium")
    assert "apt-get install /nonexistent/chromium" in str(missing.value)
    assert require("redis-server").endswith("redis-server")


def test_a_missing_program_is_one_line_and_a_failure(tmp_path):
    (tmp_path / "test_needs.py").write_text(NEEDS_A_MISSING_PROGRAM)
    (tmp_path / "conftest.py").write_text(
        "from tests.support.missing_binaries import pytest_runtest_makereport"
        "  # noqa: F401\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:django", "--rootdir", str(tmp_path), "-c", "/dev/null",
         str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 failed, 1 error" in out or "1 error, 1 failed" in out, out
    assert "skipped" not in out
    assert "Traceback" not in out, out
    assert "site-packages" not in out, out
    assert (
        "no-such-program-aether is not installed: install Debian's aether-pkg "
        "package (sudo apt-get install aether-pkg)"
    ) in out
    assert "redis-sentinel is not installed" in out
    lines = [line for line in out.splitlines() if "is not installed" in line]
    assert len(lines) <= 4, out  # the message, and its summary line, per test


def test_redis_process_checks_before_starting(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingBinary, match="apt-get install redis-server"):
        RedisProcess().start()
