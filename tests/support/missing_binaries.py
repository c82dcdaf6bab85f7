"""A pytest hook: a test or fixture that stopped on `MissingBinary` fails with its
one-line message instead of a traceback. It still fails (CI must not pass without
Chromium or Redis), it never skips. tests/conftest.py installs it."""

from collections.abc import Generator
from typing import Any

import pytest

from testing_support.binaries import MissingBinary


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    excinfo: Any = call.excinfo
    if report.failed and excinfo is not None and excinfo.errisinstance(MissingBinary):
        report.longrepr = str(excinfo.value)
    return report
