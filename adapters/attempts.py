"""Recovery attempts: one per FaceSign session this service created."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.orm import Session

from adapters.models import OutgoingMail, RecoveryAttempt, User
from adapters.outbox import PENDING as MAIL_PENDING
from adapters.users import Recipient
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
_STATUS = (
    select(RecoveryAttempt.status, OutgoingMail.id)
    .outerjoin(OutgoingMail, (OutgoingMail.attempt_id == RecoveryAttempt.id) & (OutgoingMail.status == MAIL_PENDING))
    .where(RecoveryAttempt.session_id == bindparam("session_id"))
)
# The users whose addresses the session reported come along (no join condition on the attempt: a
# LEFT JOIN keeps the attempt's row when none is enrolled), saving the rules' lookup a round trip.
# A fixed number of parameters (unused ones NULL, which matches nothing) keeps the statement's
# compiled form cached; an expanding IN would be rendered again on every execution.
PREFETCHED_EMAILS = 2
_EMAILS = tuple(f"email_{n}" for n in range(PREFETCHED_EMAILS))
_LOCK = (
    select(
        RecoveryAttempt.id,
        RecoveryAttempt.status,
        RecoveryAttempt.created_at,
        RecoveryAttempt.client_reference_id,
        RecoveryAttempt.flow,
        User.id.label("user_id"),
        User.email.label("user_email"),
    )
    .outerjoin(User, User.email.in_([bindparam(name, type_=User.email.type) for name in _EMAILS]))
    .where(RecoveryAttempt.session_id == bindparam("session_id"))
    .with_for_update(of=RecoveryAttempt)
)


def status_for_session(db: Session | Connection, session_id: str) -> tuple[str, str | None] | None:
    """The attempt's status and its mail still waiting to be sent, if any, in one statement."""
    row = db.execute(_STATUS, {"session_id": session_id}).first()
    return (row[0], row[1]) if row else None


def lock_attempt(
    db: Session | Connection, session_id: str, emails: Collection[str] = ()
) -> tuple[Row[Any] | None, dict[str, Recipient | None]]:
    """What deciding needs of the attempt, its row locked until the transaction ends, and what is
    known of up to PREFETCHED_EMAILS of `emails` (normalised): the enrolled user, or None."""
    asked = sorted(emails)[:PREFETCHED_EMAILS]
    params = {"session_id": session_id, **dict.fromkeys(_EMAILS)} | dict(zip(_EMAILS, asked, strict=False))
    rows = db.execute(_LOCK, params).all()
    known: dict[str, Recipient | None] = dict.fromkeys(asked)
    known |= {row.user_email: Recipient(row.user_id, row.user_email) for row in rows if row.user_id is not None}
    return (rows[0] if rows else None), known


def to_domain(attempt: RecoveryAttempt | Row[Any]) -> Attempt:
    return Attempt(
        id=attempt.id,
        created_at=as_utc(attempt.created_at),
        decided=attempt.status != PENDING,
        client_reference_id=attempt.client_reference_id,
        flow=attempt.flow,
    )
