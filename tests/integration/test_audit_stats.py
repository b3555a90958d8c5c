"""The dashboard's aggregates in SQL agree on both databases with what the rows say."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from adapters.db import audit_log, audit_stats
from adapters.db.audit_log import Filters
from bench.audit_rows import START, fill
from tests.fakes import migrated

WINDOW = Filters(since=START, until=START + timedelta(days=2))


def test_days_are_utc_days_and_counts_match_the_generator(database_url: str) -> None:
    db = migrated(database_url)
    fill(db.engine, 60, start=START - timedelta(hours=1), step=timedelta(hours=1))  # 23:00 the day before, on
    with db.reading() as session:
        counts = audit_stats.daily_counts(session, Filters(START - timedelta(days=1), START + timedelta(days=3)))
    per_day: Counter[str] = Counter()
    for (day, _, _), n in counts.items():
        per_day[day.isoformat()] += n
    assert per_day == {"2026-10-31": 1, "2026-11-01": 24, "2026-11-02": 24, "2026-11-03": 11}


def test_the_window_alone_and_the_filtered_join_time_the_same_decisions(database_url: str) -> None:
    db = migrated(database_url)
    fill(db.engine, 40, step=timedelta(minutes=30))
    with db.reading() as session:
        window = audit_stats.duration_histogram(session, WINDOW)  # from the attempts' own times
        by_outcome = sum(
            (
                audit_stats.duration_histogram(session, Filters(WINDOW.since, WINDOW.until, outcome))
                for outcome in ("approved", "denied")
            ),
            Counter(),
        )  # through the decisions
    expected = Counter(15 + row_id * 37 % 240 for row_id in range(1, 41))
    assert window == by_outcome == expected


def test_top_users_are_counted_per_matched_user(database_url: str) -> None:
    db = migrated(database_url)
    fill(db.engine, 400)
    with db.reading() as session:
        top = audit_stats.top_users(session, Filters(), 3)
        users = Counter(record["matchedUserId"] for record in audit_log.records(session, Filters()))
    del users[None]
    expected = sorted(users.items(), key=lambda item: (-item[1], item[0]))[:3]
    assert [(u.user_id, u.attempts) for u in top] == expected
    assert {u.user_id for u in top} == {"user_hot_0", "user_hot_1", "user_hot_2"} and min(u.attempts for u in top) > 1
    assert all(u.last.tzinfo is not None and u.last < datetime.now(UTC) for u in top)
