"""Appending to and reading the audit log (the `decisions` table)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from adapters.models import Decision, ServiceSetting
from domain import rules
from domain.audit_chain import FIELDS, GENESIS, chain_hash, email_digest, format_time

# Any constant works; it names the one lock that serialises appends on PostgreSQL.
CHAIN_LOCK_KEY = 0x46_53_52_41_55_44_49_54  # "FSRAUDIT"
PSEUDONYM_SETTING = "audit_pseudonym_key"


def pseudonym_key(session: Session, configured: str | None) -> bytes:
    if configured:
        return configured.encode("utf-8")
    stored = session.get(ServiceSetting, PSEUDONYM_SETTING)
    if stored is None:
        raise RuntimeError("the database has no audit pseudonym key: run `facesign-recovery db upgrade`")
    return stored.value.encode("utf-8")


def lock_chain(session: Session) -> None:
    """Serialise appends. SQLite's BEGIN IMMEDIATE already holds the database's one write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})


def head(session: Session) -> Decision | None:
    return session.scalar(select(Decision).order_by(Decision.id.desc()).limit(1))


def append(
    session: Session,
    decision: rules.Decision,
    *,
    attempt_id: str,
    session_id: str,
    client_reference_id: str | None,
    decided_at: datetime,
    event_id: str | None,
    message_id: str | None,
    digest_key: bytes,
) -> Decision:
    """Append one row under the chain lock; the caller's transaction commits it with everything else."""
    lock_chain(session)
    last = head(session)
    row = Decision(
        id=(last.id + 1) if last else 1,
        decided_at=decided_at,
        attempt_id=attempt_id,
        session_id=session_id,
        client_reference_id=client_reference_id,
        outcome=decision.outcome,
        reason=decision.reason,
        session_status=decision.session_status,
        recognition=decision.recognition,
        liveness=decision.liveness,
        conversation=decision.conversation,
        matched_user_id=decision.matched_user_id,
        email_digest=email_digest(digest_key, decision.recognized_email) if decision.recognized_email else None,
        rules_version=decision.rules_version,
        event_id=event_id,
        message_id=message_id,
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    row.hash = chain_hash(row.prev_hash, to_record(row))
    session.add(row)
    session.flush()
    return row


def to_record(row: Decision) -> dict[str, Any]:
    """The row under SPEC §6's field names, as the API, the CLI and the chain see it."""
    return {
        "id": row.id,
        "decidedAt": format_time(row.decided_at),
        "attemptId": row.attempt_id,
        "sessionId": row.session_id,
        "clientReferenceId": row.client_reference_id,
        "outcome": row.outcome,
        "reason": row.reason,
        "sessionStatus": row.session_status,
        "recognition": row.recognition,
        "liveness": row.liveness,
        "conversation": row.conversation,
        "matchedUserId": row.matched_user_id,
        "emailDigest": row.email_digest,
        "rulesVersion": row.rules_version,
        "eventId": row.event_id,
        "messageId": row.message_id,
        "prevHash": row.prev_hash,
        "hash": row.hash,
    }


RECORD_FIELDS = (*FIELDS, "prevHash", "hash")


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    session_id: str | None = None
    attempt_id: str | None = None
    email_digest: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.since:
            query = query.where(Decision.decided_at >= self.since)
        if self.until:
            query = query.where(Decision.decided_at < self.until)
        for column, value in (
            (Decision.outcome, self.outcome),
            (Decision.reason, self.reason),
            (Decision.session_id, self.session_id),
            (Decision.attempt_id, self.attempt_id),
            (Decision.email_digest, self.email_digest),
        ):
            if value:
                query = query.where(column == value)
        return query


def query(session: Session, filters: Filters, limit: int | None = None, after_id: int = 0) -> Iterator[Decision]:
    """Rows oldest first (by chain position), streamed."""
    statement = filters.apply(select(Decision).where(Decision.id > after_id)).order_by(Decision.id)
    if limit is not None:
        statement = statement.limit(limit)
    yield from session.scalars(statement.execution_options(yield_per=1000))
