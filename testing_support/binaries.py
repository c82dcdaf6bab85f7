"""The programs the tests and benchmarks start (redis-server, redis-sentinel,
Chromium, Node) are Debian packages, not Python ones: a missing one is one line that
says what to install, not a traceback from deep inside subprocess or Playwright."""

import shutil

DEBIAN_PACKAGES = {
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "/usr/bin/chromium": "chromium",
    "node": "nodejs",
}


class MissingBinary(RuntimeError):
    """Raised when a program the tests need is not installed; the message is the
    whole story (the test suite reports it as one line)."""


def require(binary: str) -> str:
    """The path of `binary`, or MissingBinary naming the package to install."""
    path = shutil.which(binary)
    if path is None:
        package = DEBIAN_PACKAGES.get(binary, binary)
        raise MissingBinary(
            f"{binary} is not installed: install Debian's {package} package "
            f"(sudo apt-get install {package})"
        )
    return path
