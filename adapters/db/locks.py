"""What the recovery lock reads from the audit log, and the operators' unlocks that it respects.

The audit log is append-only, so lifting a lock is a row of its own: refusals before a user's
latest unlock no longer count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from adapters.db.models import Decision, RecoveryLockReset
from domain.lock import COUNTED_REASONS
from domain.times import as_utc


def denial_times(session: Session, user_id: str, since: datetime) -> list[datetime]:
    """When this user's refusals that count toward the lock were decided, after `since` and after
    their latest unlock: one statement, answered from the index on matched user and time, since it
    runs inside the chain lock that every decision waits for."""
    latest_reset = select(func.max(RecoveryLockReset.at)).where(RecoveryLockReset.user_id == user_id).scalar_subquery()
    query = select(Decision.decided_at).where(
        Decision.matched_user_id == user_id,
        Decision.outcome == "denied",
        Decision.reason.in_(sorted(COUNTED_REASONS)),
        Decision.decided_at > since,
        or_(latest_reset.is_(None), Decision.decided_at > latest_reset),
    )
    return [as_utc(at) for at in session.scalars(query)]


def refusals_since(session: Session, user_id: str, reasons: Collection[str], since: datetime | None) -> int:
    """How many of this user's refusals for `reasons` were decided after `since` (all when None)."""
    query = select(func.count()).where(
        Decision.matched_user_id == user_id, Decision.outcome == "denied", Decision.reason.in_(sorted(reasons))
    )
    if since is not None:
        query = query.where(Decision.decided_at > since)
    return int(session.scalar(query) or 0)


def recent_denials(session: Session, since: datetime) -> Mapping[str, list[datetime]]:
    """Every user's counted refusals after `since`, less those before the user's latest unlock."""
    resets = dict(
        session.execute(select(RecoveryLockReset.user_id, func.max(RecoveryLockReset.at)).group_by("user_id")).all()
    )
    query = select(Decision.matched_user_id, Decision.decided_at).where(
        Decision.matched_user_id.is_not(None),
        Decision.outcome == "denied",
        Decision.reason.in_(sorted(COUNTED_REASONS)),
        Decision.decided_at > since,
    )
    found: dict[str, list[datetime]] = defaultdict(list)
    for user_id, decided_at in session.execute(query):
        if user_id is None:
            continue
        reset = resets.get(user_id)
        if reset is None or as_utc(decided_at) > as_utc(reset):
            found[user_id].append(as_utc(decided_at))
    return found


def add_reset(session: Session, user_id: str, at: datetime, by: str) -> None:
    session.add(RecoveryLockReset(user_id=user_id, at=at, by=by[:128]))
    session.flush()
