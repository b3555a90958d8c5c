"""What auditors ask of a window of decisions, from counts the database already grouped: approval rate and
denials by reason per day or per ISO week, and percentiles of a histogram."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from domain.rules import APPROVED, REASONS

DayCounts = Mapping[tuple[date, str, str], int]  # (UTC day, outcome, reason) -> decisions


@dataclass(frozen=True)
class Period:
    start: date  # the day, or the Monday that starts the ISO week
    total: int = 0
    approved: int = 0
    denied: Mapping[str, int] = field(default_factory=dict)  # reason -> denials

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.total if self.total else None


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def periods(counts: DayCounts, days: Iterable[date], weekly: bool = False) -> list[Period]:
    """One Period per day (or per week touching `days`), oldest first, empty ones included."""
    starts = sorted({week_of(d) if weekly else d for d in days})
    totals: dict[date, Counter[str]] = {start: Counter() for start in starts}
    approved: Counter[date] = Counter()
    for (day, outcome, reason), n in counts.items():
        start = week_of(day) if weekly else day
        if start not in totals:
            continue
        if outcome == APPROVED:
            approved[start] += n
        else:
            totals[start][reason] += n
    return [
        Period(start, approved[start] + sum(totals[start].values()), approved[start], dict(totals[start]))
        for start in starts
    ]


def denial_reasons(counts: DayCounts) -> list[str]:
    """The reasons denials in `counts` carry: the rules' order first, anything unknown after."""
    seen = {reason for (_, outcome, reason), n in counts.items() if outcome != APPROVED and n}
    return [r for r in REASONS if r in seen] + sorted(seen - set(REASONS))


def percentile(histogram: Mapping[int, int], fraction: float) -> int | None:
    """Nearest-rank percentile of the values a histogram (value -> occurrences) counts; None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(math.ceil(fraction * total), 1)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)
