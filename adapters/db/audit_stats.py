"""Read-side summaries of the audit log for the dashboard."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.db.audit_log import Filters
from adapters.db.models import Decision
from domain.times import as_utc


def daily_counts(session: Session, filters: Filters) -> Counter[tuple[date, str, str]]:
    """(UTC day, outcome, reason) → count. Bucketed here rather than in SQL so both databases agree on days."""
    statement = filters.apply(select(Decision.decided_at, Decision.outcome, Decision.reason))
    counts: Counter[tuple[date, str, str]] = Counter()
    for decided_at, outcome, reason in session.execute(statement.execution_options(yield_per=1000)):
        counts[(as_utc(decided_at).date(), outcome, reason)] += 1
    return counts


def latest(session: Session, filters: Filters, limit: int) -> Sequence[Decision]:
    statement = filters.apply(select(Decision)).order_by(Decision.id.desc()).limit(limit)
    return session.scalars(statement).all()


def decision_counts(session: Session) -> list[tuple[str, str, int]]:
    """(outcome, reason, count) over the whole log."""
    query = select(Decision.outcome, Decision.reason, func.count()).group_by(Decision.outcome, Decision.reason)
    return [(outcome, reason, int(count)) for outcome, reason, count in session.execute(query)]
