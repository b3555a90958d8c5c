"""Read-side summaries of the audit log for the dashboard, computed by the database.

Every aggregate runs in SQL over the dashboard's time window, so a load costs the same whether the log
holds a thousand rows or ten million outside that window; the indexes of migration 0008 let PostgreSQL
answer the counts from the indexes alone. Days are UTC days on both databases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, select, text
from sqlalchemy.orm import Session

from adapters.db.audit_log import Filters
from adapters.db.models import Decision, RecoveryAttempt
from domain.rules import APPROVED
from domain.times import as_utc


@dataclass(frozen=True)
class UserCount:
    user_id: str
    attempts: int
    approved: int
    last: datetime


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _utc_day(session: Session) -> ColumnElement[Any]:
    if _postgresql(session):
        return func.date(func.timezone("UTC", Decision.decided_at))
    return func.date(Decision.decided_at)  # SQLite keeps UTC times as text: its date() reads them


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def daily_counts(session: Session, filters: Filters) -> Counter[tuple[date, str, str]]:
    """(UTC day, outcome, reason) → count."""
    day = _utc_day(session).label("day")
    query = filters.apply(select(day, Decision.outcome, Decision.reason, func.count())).group_by(
        day, Decision.outcome, Decision.reason
    )
    return Counter({(_as_date(d), outcome, reason): int(n) for d, outcome, reason, n in session.execute(query)})


def top_users(session: Session, filters: Filters, limit: int) -> list[UserCount]:
    """The matched users with the most decisions in the window: repeated attempts on one account stand out."""
    attempts = func.count().label("attempts")
    approved = func.sum(case((Decision.outcome == APPROVED, 1), else_=0))
    query = (
        filters.apply(select(Decision.matched_user_id, attempts, approved, func.max(Decision.decided_at)))
        .where(Decision.matched_user_id.is_not(None))
        .group_by(Decision.matched_user_id)
        .order_by(attempts.desc(), Decision.matched_user_id)
        .limit(limit)
    )
    return [UserCount(str(user), int(n), int(ok or 0), as_utc(last)) for user, n, ok, last in session.execute(query)]


def _rounded_seconds(session: Session, end: Any, start: Any) -> ColumnElement[Any]:
    """Seconds from `start` to `end`, rounded to the nearest second."""
    if _postgresql(session):
        return func.round(func.date_part("epoch", end - start))  # a float: EXTRACT's numeric is slower
    # SQLite: from julian days, whose floating point puts 131 s at 130.99999…: rounding, not truncation
    return cast(func.round((func.julianday(end) - func.julianday(start)) * 86400.0), Integer)


def duration_histogram(session: Session, filters: Filters) -> Counter[int]:
    """Seconds (rounded) from an attempt's start to its decision → how many decisions took that long.

    Attempts live at most ATTEMPT_TTL plus a reconciler pass, so there are a few thousand buckets at
    most, and any percentile read from them is exact to the second. For a window alone the attempts
    table answers by itself (an attempt is settled in the transaction that appends its decision, with
    the same time), from an index; other filters are on the decision, which is joined then.
    """
    if filters == Filters(since=filters.since, until=filters.until):
        seconds = _rounded_seconds(session, RecoveryAttempt.decided_at, RecoveryAttempt.created_at).label("seconds")
        query = select(seconds, func.count()).where(RecoveryAttempt.decided_at.is_not(None))
        if filters.since:
            query = query.where(RecoveryAttempt.decided_at >= filters.since)
        if filters.until:
            query = query.where(RecoveryAttempt.decided_at < filters.until)
    else:
        seconds = _rounded_seconds(session, Decision.decided_at, RecoveryAttempt.created_at).label("seconds")
        query = filters.apply(
            select(seconds, func.count())
            .select_from(Decision)
            .join(RecoveryAttempt, RecoveryAttempt.id == Decision.attempt_id)
        )
    return Counter({int(s): int(n) for s, n in session.execute(query.group_by(seconds)) if s is not None})


def prefer_fast_aggregates(session: Session) -> None:
    """For one read-only transaction of aggregates on PostgreSQL: hash in memory rather than spill to disk,
    and skip JIT compilation, which costs more than it saves on queries that run for a fraction of a second."""
    if _postgresql(session):
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))


def latest(session: Session, filters: Filters, limit: int) -> Sequence[Decision]:
    statement = filters.apply(select(Decision)).order_by(Decision.id.desc()).limit(limit)
    return session.scalars(statement).all()


def decision_counts(session: Session) -> list[tuple[str, str, int]]:
    """(outcome, reason, count) over the whole log."""
    query = select(Decision.outcome, Decision.reason, func.count()).group_by(Decision.outcome, Decision.reason)
    return [(outcome, reason, int(count)) for outcome, reason, count in session.execute(query)]
