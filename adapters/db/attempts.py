"""Recovery attempts: one per FaceSign session this service created."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.db.models import OutgoingMail, RecoveryAttempt
from adapters.db.outbox import PENDING as MAIL_PENDING
from domain.rules import Attempt
from domain.times import as_utc

PENDING = "pending"


def create_attempt(
    session: Session,
    attempt_id: str,
    session_id: str,
    flow: list[dict[str, Any]],
    session_url: str,
    now: datetime,
    kind: str = "forgot_password",
    *,
    client_digest: str | None = None,
) -> None:
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
            client_digest=client_digest,
        )
    )
    session.flush()


def status_of(session: Session, attempt_id: str) -> tuple[str, datetime] | None:
    """The attempt's status and when it was created, or None for an unknown id."""
    row = session.execute(
        select(RecoveryAttempt.status, RecoveryAttempt.created_at).where(RecoveryAttempt.id == attempt_id)
    ).first()
    return (row.status, as_utc(row.created_at)) if row else None


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
    )
    return attempt, row.pending_mail_id


def settle(session: Session, attempt_id: str, status: str, now: datetime) -> bool:
    """Move a pending attempt to its final status; False when it was no longer pending."""
    settled = session.execute(
        update(RecoveryAttempt)
        .where(RecoveryAttempt.id == attempt_id, RecoveryAttempt.status == PENDING)
        .values(status=status, decided_at=now)
        .returning(RecoveryAttempt.id)
    ).first()
    return settled is not None


def pending_sessions(session: Session, created_before: datetime, limit: int) -> Sequence[str]:
    """Session ids of attempts still pending that were created before `created_before`, oldest first."""
    query = (
        select(RecoveryAttempt.session_id)
        .where(RecoveryAttempt.status == PENDING, RecoveryAttempt.created_at <= created_before)
        .order_by(RecoveryAttempt.created_at)
        .limit(limit)
    )
    return [session_id for session_id in session.scalars(query) if session_id]
