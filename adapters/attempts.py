"""Recovery attempts: one per FaceSign session this service created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.orm import Session

from adapters.models import OutgoingMail, RecoveryAttempt
from adapters.outbox import PENDING as MAIL_PENDING
from domain.rules import Attempt

PENDING = "pending"


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def create_attempt(
    session: Session,
    attempt_id: str,
    session_id: str,
    flow: list[dict[str, Any]],
    session_url: str,
    now: datetime,
    ttl: int,
    kind: str = "forgot_password",
) -> RecoveryAttempt:
    attempt = RecoveryAttempt(
        id=attempt_id,
        session_id=session_id,
        client_reference_id=attempt_id,
        kind=kind,
        status=PENDING,
        flow=flow,
        session_url=session_url,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    session.add(attempt)
    session.flush()
    return attempt


def get_attempt(session: Session, attempt_id: str) -> RecoveryAttempt | None:
    return session.get(RecoveryAttempt, attempt_id)


# Built once: constructing a statement costs more CPU than its cached compilation.
_FOR_DECIDING = (
    select(
        RecoveryAttempt.id,
        RecoveryAttempt.status,
        RecoveryAttempt.created_at,
        RecoveryAttempt.client_reference_id,
        RecoveryAttempt.flow,
        OutgoingMail.id.label("pending_mail_id"),
    )
    .outerjoin(OutgoingMail, (OutgoingMail.attempt_id == RecoveryAttempt.id) & (OutgoingMail.status == MAIL_PENDING))
    .where(RecoveryAttempt.session_id == bindparam("session_id"))
)


def for_deciding(db: Session | Connection, session_id: str) -> Row[Any] | None:
    """What deciding needs of the attempt (its status, and the fields that never change after it is
    created), with its mail still waiting to be sent, if any: one statement. Not locked: the
    decision's writes (adapters.outcome) happen only while the status is still pending."""
    return db.execute(_FOR_DECIDING, {"session_id": session_id}).first()


def to_domain(attempt: RecoveryAttempt | Row[Any]) -> Attempt:
    return Attempt(
        id=attempt.id,
        created_at=as_utc(attempt.created_at),
        decided=attempt.status != PENDING,
        client_reference_id=attempt.client_reference_id,
        flow=attempt.flow,
    )
