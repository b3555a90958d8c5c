"""Approval rates and denials per day and week, and percentiles, from grouped counts."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from domain.audit_summary import denial_reasons, percentile, periods, week_of

MONDAY = date(2026, 11, 16)
COUNTS = Counter(
    {
        (MONDAY, "approved", "verified"): 3,
        (MONDAY, "denied", "deepfake_detected"): 1,
        (MONDAY + timedelta(days=6), "denied", "no_face"): 2,  # Sunday, same ISO week
        (MONDAY + timedelta(days=7), "approved", "verified"): 4,
        (MONDAY + timedelta(days=7), "denied", "some_future_reason"): 1,
    }
)


def test_days_carry_totals_rates_and_denials_by_reason_including_empty_days() -> None:
    days = [MONDAY + timedelta(days=n) for n in range(8)]
    rows = periods(COUNTS, days)
    assert [p.start for p in rows] == days
    assert (rows[0].total, rows[0].approved, rows[0].denied) == (4, 3, {"deepfake_detected": 1})
    assert rows[0].approval_rate == 0.75
    assert rows[1].total == 0 and rows[1].approval_rate is None


def test_weeks_start_on_monday_and_add_up_their_days() -> None:
    days = [MONDAY + timedelta(days=n) for n in range(8)]
    first, second = periods(COUNTS, days, weekly=True)
    assert (first.start, first.total, first.approved) == (MONDAY, 6, 3)
    assert first.denied == {"deepfake_detected": 1, "no_face": 2}
    assert (second.start, second.total) == (MONDAY + timedelta(days=7), 5)
    assert week_of(MONDAY + timedelta(days=6)) == MONDAY


def test_denial_reasons_follow_the_rules_order_then_the_unknown() -> None:
    assert denial_reasons(COUNTS) == ["no_face", "deepfake_detected", "some_future_reason"]


def test_nearest_rank_percentiles() -> None:
    histogram = Counter({10: 5, 20: 4, 300: 1})  # ten values
    assert percentile(histogram, 0.5) == 10  # the 5th value
    assert percentile(histogram, 0.6) == 20
    assert percentile(histogram, 0.95) == 300  # the 10th
    assert percentile(Counter({7: 1}), 0.95) == 7
    assert percentile(Counter(), 0.5) is None
