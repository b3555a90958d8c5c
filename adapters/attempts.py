"""Recovery attempts: one per FaceSign session this service created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.models import RecoveryAttempt
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


def attempt_for_session(session: Session, session_id: str, lock: bool = False) -> RecoveryAttempt | None:
    query = select(RecoveryAttempt).where(RecoveryAttempt.session_id == session_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def to_domain(attempt: RecoveryAttempt) -> Attempt:
    return Attempt(
        id=attempt.id,
        created_at=as_utc(attempt.created_at),
        decided=attempt.status != PENDING,
        client_reference_id=attempt.client_reference_id,
        flow=attempt.flow,
    )
