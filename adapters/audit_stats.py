"""Read-side summaries of the audit log for the dashboard."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.audit_log import Filters
from adapters.models import Decision


def daily_counts(session: Session, filters: Filters) -> Counter[tuple[date, str, str]]:
    """(UTC day, outcome, reason) → count. Bucketed here rather than in SQL so both databases agree on days."""
    statement = filters.apply(select(Decision.decided_at, Decision.outcome, Decision.reason))
    counts: Counter[tuple[date, str, str]] = Counter()
    for decided_at, outcome, reason in session.execute(statement.execution_options(yield_per=1000)):
        moment = decided_at if decided_at.tzinfo else decided_at.replace(tzinfo=UTC)
        counts[(moment.astimezone(UTC).date(), outcome, reason)] += 1
    return counts


def latest(session: Session, filters: Filters, limit: int) -> Sequence[Decision]:
    statement = filters.apply(select(Decision)).order_by(Decision.id.desc()).limit(limit)
    return session.scalars(statement).all()


def utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()
