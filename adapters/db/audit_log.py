"""The audit log (the `decisions` table): appending under the chain lock, and reading it back.

Appending is one path for every database: take the chain lock, read the head, hash the new row in
Python with `domain.audit_chain.chain_hash` (the function `audit verify` checks with) and insert it
as head + 1. The lock is a transaction-scoped advisory lock on PostgreSQL; SQLite's writing
transactions already hold the database's one write lock (BEGIN IMMEDIATE, adapters.db.engine).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from adapters.db.models import Decision
from domain import rules
from domain.audit_chain import FIELDS, GENESIS, chain_hash, email_digest
from domain.times import format_time

# Any constant works; it names the one lock that serialises appends on PostgreSQL.
CHAIN_LOCK_KEY = 0x46_53_52_41_55_44_49_54  # "FSRAUDIT"
RECORD_FIELDS = (*FIELDS, "prevHash", "hash")
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class ChainHead:
    """The last row's id and hash: what the next row links to."""

    id: int
    hash: str


EMPTY_CHAIN = ChainHead(0, GENESIS)


def lock_chain(session: Session) -> ChainHead:
    """Take the lock that serialises appends (held until the transaction ends), then read the head.

    On PostgreSQL the head is read by a statement after the one that waited for the lock, so its
    snapshot includes the row appended just before the lock was granted.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))
    row = session.execute(select(Decision.id, Decision.hash).order_by(Decision.id.desc()).limit(1)).first()
    return ChainHead(row[0], row[1]) if row else EMPTY_CHAIN


def new_row(
    decision: rules.Decision,
    *,
    attempt_id: str,
    session_id: str,
    client_reference_id: str | None,
    decided_at: datetime,
    event_id: str | None,
    message_id: str | None,
    digest_key: bytes,
) -> dict[str, Any]:
    """A row's columns except its place in the chain (`id`, `prev_hash`, `hash`)."""
    return {
        "decided_at": decided_at,
        "attempt_id": attempt_id,
        "session_id": session_id,
        "client_reference_id": client_reference_id,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "session_status": decision.session_status,
        "recognition": decision.recognition,
        "liveness": decision.liveness,
        "conversation": decision.conversation,
        "matched_user_id": decision.matched_user_id,
        "email_digest": email_digest(digest_key, decision.recognized_email) if decision.recognized_email else None,
        "rules_version": decision.rules_version,
        "event_id": event_id,
        "message_id": message_id,
    }


def append(session: Session, values: dict[str, Any], head: ChainHead) -> dict[str, Any]:
    """Insert `new_row()`'s values as the row after `head` (from `lock_chain()` in this transaction).
    Returns the row as a record (the API's field names)."""
    row = Decision(id=head.id + 1, **values, prev_hash=head.hash, hash="")
    record = to_record(row)
    row.hash = record["hash"] = chain_hash(head.hash, record)
    session.add(row)
    session.flush()
    return record


def to_record(row: Decision | Row[Any]) -> dict[str, Any]:
    """The row under the API's field names, as the API, the CLI and the chain see it."""
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


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    session_id: str | None = None
    attempt_id: str | None = None
    email_digest: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters that were given, JSON-friendly: for the access log and for cursors."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
            if value is not None
        }

    def apply(self, query: SelectT) -> SelectT:
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


# The record's columns in RECORD_FIELDS order: read as plain tuples, a million rows stream without the
# cost of building an ORM object for each.
RECORD_COLUMNS = (
    Decision.id,
    Decision.decided_at,
    Decision.attempt_id,
    Decision.session_id,
    Decision.client_reference_id,
    Decision.outcome,
    Decision.reason,
    Decision.session_status,
    Decision.recognition,
    Decision.liveness,
    Decision.conversation,
    Decision.matched_user_id,
    Decision.email_digest,
    Decision.rules_version,
    Decision.event_id,
    Decision.message_id,
    Decision.prev_hash,
    Decision.hash,
)
STREAM_BATCH = 2000  # rows per fetch; on PostgreSQL from a server-side cursor, so memory stays flat


def _record(values: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(RECORD_FIELDS, values, strict=True))
    record["decidedAt"] = format_time(record["decidedAt"])
    return record


def records(
    session: Session, filters: Filters, limit: int | None = None, after_id: int = 0
) -> Iterator[dict[str, Any]]:
    """Records oldest first (by chain position), streamed."""
    statement = filters.apply(select(*RECORD_COLUMNS).where(Decision.id > after_id)).order_by(Decision.id)
    if limit is not None:
        statement = statement.limit(limit)
    for values in session.execute(statement.execution_options(yield_per=STREAM_BATCH)):
        yield _record(values)


def record_of(session: Session, row_id: int) -> dict[str, Any] | None:
    values = session.execute(select(*RECORD_COLUMNS).where(Decision.id == row_id)).first()
    return _record(values) if values is not None else None


def head_id(session: Session) -> int:
    """The newest row's chain position (0 for an empty log); ids are positions, so also the row count."""
    return int(session.scalar(select(func.max(Decision.id))) or 0)


def hash_of(session: Session, row_id: int) -> str | None:
    """The stored hash of the row at chain position `row_id`, if there is one."""
    return session.scalar(select(Decision.hash).where(Decision.id == row_id))
