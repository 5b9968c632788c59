"""Benchmark results: the JSON file `make bench` writes, and the table it prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """One measurement; `ratio` is value / baseline when the baseline was measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None


def measured(name: str, value: float, unit: str, baseline: float | None = None) -> Result:
    """A result whose ratio is derived from its baseline (none when there is no baseline, or it is zero)."""
    ratio = value / baseline if baseline else None
    return Result(name, round(value, 4), unit, _rounded(baseline), _rounded(ratio))


def _rounded(number: float | None) -> float | None:
    return None if number is None else round(number, 4)


def write_json(results: Sequence[Result], path: Path) -> None:
    """Write `results` as the list of {"name", "value", "unit", "baseline", "ratio"} objects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False) + "\n")


def format_table(results: Sequence[Result]) -> str:
    """A fixed-width text table of the results, in the order measured."""
    header = ("benchmark", "value", "unit", "baseline", "ratio")
    rows = [header] + [
        (r.name, _number(r.value), r.unit, _number(r.baseline), _number(r.ratio)) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)),
        ]
        cells[2] = row[2].ljust(widths[2])
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
