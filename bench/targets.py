"""The issue targets one ``make bench`` run checks, gathered into one table.

Each part module of the benchmark has a ``targets(results)`` function that returns the
:class:`Target` rows its measurements decide; :func:`collect` asks every part and
:func:`markdown` prints them first in the report and on stdout. A target is met, missed, or
undecided in this run (``met=None``: the part did not run at the size the target names, say
a quick run without 1M keys).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """One issue target: what it asks, what this run measured, and whether that meets it."""

    issue: int
    name: str
    measured: str
    met: bool | None


#: The verdict column's words.
VERDICTS = {True: "PASS", False: "**FAIL**", None: "n/a"}


def at_most(value: float | None, ceiling: float, decided: bool = True) -> bool | None:
    """Whether ``value`` is at most ``ceiling`` (None when not measured or not decided)."""
    if value is None or not decided:
        return None
    return value <= ceiling


def at_least(value: float | None, floor: float, decided: bool = True) -> bool | None:
    """Whether ``value`` is at least ``floor`` (None when not measured or not decided)."""
    if value is None or not decided:
        return None
    return value >= floor


#: How much more an operation may cost at the largest size than at the smallest, 100 times
#: fewer, and still count as flat (issue 19): a cost that follows the data would be 100 x, one
#: that follows its logarithm about 1.7 x; the rest is room for a shared machine's noise.
FLAT_FACTOR = 3.0


def flatness(
    issue: int, name: str, cells: dict[int, float], smallest: int, largest: int, unit: str = "ms"
) -> Target:
    """Whether an operation's cost (``cells``: size -> cost in ``unit``) stays flat from
    ``smallest`` to ``largest``: at most :data:`FLAT_FACTOR` times as much (n/a when either was
    not measured)."""
    shown = " / ".join(f"{cells[size]:.3g}" for size in sorted(cells)) + f" {unit} at "
    shown += " / ".join(f"{size:,}" for size in sorted(cells))
    if smallest not in cells or largest not in cells:
        return Target(issue, f"{name}: flat up to {largest:,}", shown, None)
    ratio = cells[largest] / max(cells[smallest], 1e-9)
    return Target(
        issue,
        f"{name}: {largest:,} costs <= {FLAT_FACTOR:g} x {smallest:,}",
        f"{shown} ({ratio:.2f} x)",
        ratio <= FLAT_FACTOR,
    )


def collect(
    results: dict[str, Any], parts: Iterable[Callable[[dict[str, Any]], list[Target]]]
) -> list[Target]:
    """Every part's targets, ordered by issue (a part that did not run adds none)."""
    found = [target for part in parts for target in part(results)]
    return sorted(found, key=lambda target: target.issue)


def markdown(found: list[Target]) -> list[str]:
    """The targets as markdown lines (none when no part decided any)."""
    if not found:
        return []
    lines = [
        "",
        "Issue targets in this run (same-run ratios; n/a: not decided by this run):",
        "",
        "| issue | target | measured | verdict |",
        "|--:|---|---|---|",
    ]
    for target in found:
        lines.append(
            f"| {target.issue} | {target.name} | {target.measured} | {VERDICTS[target.met]} |"
        )
    return lines
