"""Operators' view of the recovery lock: who is locked, and lifting a lock (both in the access log)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.db import audit_log, locks, users
from adapters.db.engine import Database
from domain.lock import LockPolicy, lifted_at
from usecases.audit import record_access


@dataclass(frozen=True)
class LockedUser:
    user_id: str
    locked_until: datetime
    refusals: int  # counted refusals within the last two windows, since the latest unlock


def locked_users(db: Database, who: str, policy: LockPolicy, now: datetime) -> list[LockedUser]:
    """Users whose recoveries are locked now, the lock ending soonest first."""
    record_access(db, who, "users.locks", {})
    with db.reading() as session:
        recent = locks.recent_denials(session, policy.lookback(now))
    found = []
    for user_id, times in recent.items():
        until = lifted_at(times, policy)
        if until is not None and now < until:
            found.append(LockedUser(user_id, until, len(times)))
    return sorted(found, key=lambda user: (user.locked_until, user.user_id))


class UnknownUser(LookupError):
    pass


def unlock(db: Database, who: str, user_id: str, policy: LockPolicy, now: datetime) -> bool:
    """Lift the user's lock (refusals before now stop counting); False when they were not locked.

    Under the audit chain's lock, like every decision: a decision is either wholly before the unlock
    or sees it."""
    record_access(db, who, "users.unlock", {"userId": user_id})
    with db.transaction() as session:
        if users.get_user(session, user_id) is None:
            raise UnknownUser(user_id)
        audit_log.lock_chain(session)
        until = lifted_at(locks.denial_times(session, user_id, policy.lookback(now)), policy)
        was_locked = until is not None and now < until
        if was_locked:
            locks.add_reset(session, user_id, now, who)
    return was_locked
