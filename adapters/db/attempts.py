"""Recovery attempts: one per FaceSign session this service created."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from adapters.db.models import OutgoingMail, RecoveryAttempt
from adapters.db.outbox import PENDING as MAIL_PENDING
from domain.rules import Attempt
from domain.times import as_utc

PENDING = "pending"
FAILED = "failed"  # FaceSign never gave it a session: nobody was handed its id, nothing to decide


def create_attempt(
    session: Session,
    attempt_id: str,
    session_id: str | None,
    flow: list[dict[str, Any]],
    session_url: str | None,
    now: datetime,
    kind: str = "forgot_password",
    *,
    client_digest: str | None = None,
) -> None:
    """A pending attempt; without a session id until FaceSign has created its session (`attach_session`)."""
    session.add(
        RecoveryAttempt(
            id=attempt_id,
            session_id=session_id,
            client_reference_id=attempt_id,
            kind=kind,
            status=PENDING,
            flow=flow,
            session_url=session_url,
            created_at=now,
            next_check_at=now,
            checks=0,
            client_digest=client_digest,
        )
    )
    session.flush()


def attach_session(session: Session, attempt_id: str, session_id: str, session_url: str) -> bool:
    """Give a pending attempt the session FaceSign created for it; False when it is no longer pending."""
    return _update_pending(session, attempt_id, session_id=session_id, session_url=session_url)


def fail_unstarted(session: Session, now: datetime, created_before: datetime, attempt_id: str | None = None) -> int:
    """Close pending attempts that never got a session (this one, or all created before `created_before`)."""
    query = update(RecoveryAttempt).where(
        RecoveryAttempt.status == PENDING,
        RecoveryAttempt.session_id.is_(None),
        RecoveryAttempt.created_at <= created_before,
    )
    if attempt_id is not None:
        query = query.where(RecoveryAttempt.id == attempt_id)
    return len(session.scalars(query.values(status=FAILED, decided_at=now).returning(RecoveryAttempt.id)).all())


@dataclass(frozen=True)
class Status:
    status: str
    created_at: datetime
    last_event_at: datetime | None


def status_of(session: Session, attempt_id: str) -> Status | None:
    """The attempt's status, when it was created and its held event time, or None for an unknown id."""
    row = session.execute(
        select(RecoveryAttempt.status, RecoveryAttempt.created_at, RecoveryAttempt.last_event_at).where(
            RecoveryAttempt.id == attempt_id
        )
    ).first()
    if row is None:
        return None
    return Status(row.status, as_utc(row.created_at), as_utc(row.last_event_at) if row.last_event_at else None)


def for_deciding(session: Session, session_id: str, *, lock: bool = False) -> tuple[Attempt, str | None] | None:
    """The attempt of this FaceSign session as the rules see it, with its mail still waiting to be
    sent, if any; None when the session is not one of ours. `lock`: hold the attempt's row until the
    transaction ends (PostgreSQL; SQLite's writer already holds the whole database)."""
    query = (
        select(
            RecoveryAttempt.id,
            RecoveryAttempt.status,
            RecoveryAttempt.created_at,
            RecoveryAttempt.client_reference_id,
            RecoveryAttempt.flow,
            RecoveryAttempt.last_event_at,
            OutgoingMail.id.label("pending_mail_id"),
        )
        .outerjoin(
            OutgoingMail, (OutgoingMail.attempt_id == RecoveryAttempt.id) & (OutgoingMail.status == MAIL_PENDING)
        )
        .where(RecoveryAttempt.session_id == session_id)
    )
    if lock:
        query = query.with_for_update(of=RecoveryAttempt)
    row = session.execute(query).first()
    if row is None:
        return None
    attempt = Attempt(
        id=row.id,
        created_at=as_utc(row.created_at),
        decided=row.status != PENDING,
        client_reference_id=row.client_reference_id,
        flow=row.flow,
        last_event_at=as_utc(row.last_event_at) if row.last_event_at else None,
    )
    return attempt, row.pending_mail_id


def settle(session: Session, attempt_id: str, status: str, now: datetime) -> bool:
    """Move a pending attempt to its final status; False when it was no longer pending."""
    return _update_pending(session, attempt_id, status=status, decided_at=now)


def _update_pending(session: Session, attempt_id: str, **values: object) -> bool:
    """Set these columns of the attempt if it is still pending (one statement); False when it is not."""
    changed = session.execute(
        update(RecoveryAttempt)
        .where(RecoveryAttempt.id == attempt_id, RecoveryAttempt.status == PENDING)
        .values(**values)
        .returning(RecoveryAttempt.id)
    ).first()
    return changed is not None


def hold_event_time(session: Session, session_id: str, event_at: datetime) -> None:
    """Keep the latest signed status-event time of a pending attempt whose event could not be acted on."""
    session.execute(
        update(RecoveryAttempt)
        .where(
            RecoveryAttempt.session_id == session_id,
            RecoveryAttempt.status == PENDING,
            or_(RecoveryAttempt.last_event_at.is_(None), RecoveryAttempt.last_event_at < event_at),
        )
        .values(last_event_at=event_at)
    )


@dataclass(frozen=True)
class Due:
    attempt_id: str
    session_id: str
    created_at: datetime
    checks: int


def due_for_check(session: Session, now: datetime, created_before: datetime, limit: int) -> list[Due]:
    """Pending attempts with a session, created before `created_before` and due by `now`, soonest due first
    (an attempt never scheduled, which only rows written outside the service can be, counts as due first)."""
    next_check = RecoveryAttempt.next_check_at
    query = (
        select(RecoveryAttempt.id, RecoveryAttempt.session_id, RecoveryAttempt.created_at, RecoveryAttempt.checks)
        .where(
            RecoveryAttempt.status == PENDING,
            or_(next_check.is_(None), next_check <= now),
            RecoveryAttempt.session_id.is_not(None),
            RecoveryAttempt.created_at <= created_before,
        )
        .order_by(next_check.nulls_first(), RecoveryAttempt.created_at)
        .limit(limit)
    )
    return [Due(row.id, row.session_id, as_utc(row.created_at), row.checks or 0) for row in session.execute(query)]


def reschedule(session: Session, next_checks: dict[str, datetime]) -> None:
    """Count one more look at each still-pending attempt and set when its next one is due (one statement)."""
    if not next_checks:
        return
    statement = (
        update(RecoveryAttempt)
        .where(RecoveryAttempt.id == bindparam("attempt"), RecoveryAttempt.status == PENDING)
        .values(next_check_at=bindparam("due"), checks=RecoveryAttempt.checks + 1)
    )
    # On the connection: an executemany of one statement (the ORM session would insist on primary keys).
    session.connection().execute(statement, [{"attempt": key, "due": due} for key, due in next_checks.items()])
