"""The browser client's unit tests (tests/js/*.test.mjs) under Node's own test
runner, so that CI runs them with the Python suite. Node is a test dependency like
Chromium: without it this fails, it never skips."""

import re
import subprocess
from pathlib import Path

from testing_support.binaries import require

ROOT = Path(__file__).resolve().parent.parent


def test_node_runs_the_client_tests_and_all_pass():
    """`node --test tests/js/` exits 0; its report is shown when it does not."""
    node = require("node")  # 20 or newer
    run = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, f"node --test failed:\n{run.stdout}\n{run.stderr}"
    counted = re.search(r"^# tests (\d+)$", run.stdout, re.MULTILINE)
    assert counted, f"no test summary:\n{run.stdout}"
    assert int(counted.group(1)) > 0, f"no tests ran:\n{run.stdout}"
