"""Samples, medians and the ratio table that every side-by-side benchmark prints.

A benchmark records one sample per contestant per repeat (`Samples.add`), then turns
the medians into `Row`s: ours against a peer (or against a floor), with the target
that ratio must meet. Medians, because this machine has two noisy cores.
"""

import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MISSING = "-"


@dataclass(frozen=True)
class Target:
    """A bound on a ratio: `Target(">=", 30)` reads "at least 30 times"."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"target op must be '>=' or '<=', got {self.op!r}")

    def met(self, ratio: float | None) -> bool | None:
        if ratio is None:
            return None
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g}x"


@dataclass(frozen=True)
class Row:
    """One line of the table: medians of ours, the peer's and the floor's samples.

    `against` names the column the ratio divides by ("theirs" or "floor"), so a
    row can also say how close we come to the floor.
    """

    metric: str
    ours: float | None
    theirs: float | None = None
    floor: float | None = None
    target: Target | None = None
    against: str = "theirs"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        base = self.floor if self.against == "floor" else self.theirs
        return ratio(self.ours, base)

    @property
    def met(self) -> bool | None:
        return self.target.met(self.ratio) if self.target else None


class Samples:
    """Every sample of every (metric, contestant), in the order they were taken."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )

    def add(self, metric: str, contestant: str, value: float) -> None:
        self._values[metric][contestant].append(value)

    def values(self, metric: str, contestant: str) -> list[float]:
        return list(self._values.get(metric, {}).get(contestant, ()))

    def median(self, metric: str, contestant: str) -> float | None:
        values = self.values(metric, contestant)
        return statistics.median(values) if values else None

    def as_dict(self) -> dict[str, dict[str, list[float]]]:
        return {metric: dict(by) for metric, by in self._values.items()}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either side was not measured."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def format_value(value: float | None) -> str:
    if value is None:
        return MISSING
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_ratio(value: float | None, against: str = "theirs") -> str:
    if value is None:
        return MISSING
    text = f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"
    return text + (" floor" if against == "floor" else "")


def render_table(rows: Iterable[Row], peer: str = "theirs") -> str:
    """A plain-text table: metric, ours, theirs, floor, ratio, target, met."""
    header = ("metric", "ours", peer, "floor", "ratio", "target", "met")
    lines = [header]
    for row in rows:
        met = MISSING if row.met is None else ("yes" if row.met else "NO")
        lines.append(
            (
                row.metric,
                format_value(row.ours),
                format_value(row.theirs),
                format_value(row.floor),
                format_ratio(row.ratio, row.against),
                str(row.target) if row.target else MISSING,
                met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [_render_line(line, widths) for line in lines]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)


def _render_line(cells: tuple[str, ...], widths: list[int]) -> str:
    first = cells[0].ljust(widths[0])
    pairs = zip(cells[1:], widths[1:], strict=True)
    rest = (cell.rjust(width) for cell, width in pairs)
    return " | ".join((first, *rest))


def notes_of(rows: Iterable[Row]) -> list[str]:
    return [f"{row.metric}: {row.note}" for row in rows if row.note]


@dataclass
class Report:
    """What a run writes to JSON: settings, medians with ratios, and every sample."""

    benchmark: str
    settings: dict[str, Any]
    rows: list[Row]
    samples: Samples
    started: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "python": sys.version.split()[0],
            "machine": platform.platform(),
            "settings": self.settings,
            "rows": [
                {
                    **asdict(row),
                    "target": str(row.target) if row.target else None,
                    "ratio": row.ratio,
                    "met": row.met,
                }
                for row in self.rows
            ],
            "samples": self.samples.as_dict(),
        }


def write_json(report: Report, directory: Path) -> Path:
    """Write the report as `<benchmark>-<timestamp>.json` under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(report.started))
    path = directory / f"{report.benchmark}-{stamp}.json"
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return path
