"""Where a profiled daphne of the end-to-end benchmark spent its CPU: cProfile's
tottime grouped by where the code lives, so that a run prints one line per server
instead of a pstats dump."""

import pstats
from pathlib import Path

AREAS = (
    ("aether_compat/layers", "our layer"),
    ("aether_compat", "aether consumer"),
    ("channels_redis/", "channels_redis layer"),
    ("channels/layers.py", "channels layer"),
    ("/channels/", "channels consumer"),
    ("/redis/", "redis-py"),
    ("msgpack", "msgpack"),
    ("/asgiref/", "thread hop"),
    ("concurrent/futures", "thread hop"),
    ("threading.py", "thread hop"),
    ("/autobahn/", "daphne+twisted+autobahn"),
    ("/twisted/", "daphne+twisted+autobahn"),
    ("/daphne/", "daphne+twisted+autobahn"),
    ("asyncio", "asyncio loop"),
    ("selectors.py", "asyncio loop"),
)


def profile_summary(path: Path) -> str:
    """daphne's CPU time (cProfile tottime) by where the code lives, as shares of
    the busy time; time blocked in epoll is reported apart as idle."""
    by_area: dict[str, float] = {}
    for (filename, _line, function), row in pstats.Stats(str(path)).stats.items():
        area = _area(filename, function)
        by_area[area] = by_area.get(area, 0.0) + row[2]
    idle = by_area.pop("idle", 0.0)
    busy = sum(by_area.values()) or 1.0
    ranked = sorted(by_area.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{area} {100 * t / busy:.0f}%" for area, t in ranked)
    return f"  {path.name}: daphne busy {busy:.1f} s, idle {idle:.1f} s: {shares}"


def _area(filename: str, function: str) -> str:
    if filename == "~":
        if "poll" in function:
            return "idle"
        if "_socket.socket" in function:
            return "socket writes"
        if "lock" in function or "acquire" in function:
            return "thread hop"
        return "builtins"
    for fragment, area in AREAS:
        if fragment in filename:
            return area
    return "other (startup, logging)"
