"""Appending to and reading the audit log (the `decisions` table)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    LargeBinary,
    Row,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.orm import Session

from adapters.models import Decision, ServiceSetting
from domain import rules
from domain.audit_chain import FIELDS, GENESIS, canonical_around_id, chain_hash, email_digest, format_time

# Any constant works; it names the one lock that serialises appends on PostgreSQL.
CHAIN_LOCK_KEY = 0x46_53_52_41_55_44_49_54  # "FSRAUDIT"
PSEUDONYM_SETTING = "audit_pseudonym_key"

# Built once: constructing a statement costs more CPU than its cached compilation.
_HEAD_LINK = select(Decision.id, Decision.hash).order_by(Decision.id.desc()).limit(1)
_CHAIN_HEAD = func.audit_chain_head(CHAIN_LOCK_KEY).table_valued("head_id", "head_hash")
_LOCKED_HEAD = select(_CHAIN_HEAD.c.head_id, _CHAIN_HEAD.c.head_hash)  # PostgreSQL: see locked_head()
_INSERT = insert(Decision.__table__)


def pseudonym_key(db: Session | Connection, configured: str | None) -> bytes:
    if configured:
        return configured.encode("utf-8")
    stored = db.execute(select(ServiceSetting.value).where(ServiceSetting.key == PSEUDONYM_SETTING)).scalar()
    if stored is None:
        raise RuntimeError("the database has no audit pseudonym key: run `facesign-recovery db upgrade`")
    return stored.encode("utf-8")


@dataclass(frozen=True)
class ChainHead:
    """The last row's id and hash: what the next row links to."""

    id: int
    hash: str


EMPTY_CHAIN = ChainHead(0, GENESIS)


def locked_head(db: Session | Connection) -> ChainHead:
    """Take the lock that serialises appends (held until the transaction ends) and read the head.

    On PostgreSQL both are one call of audit_chain_head() (migration 0003), which reads the head with
    a snapshot taken after the lock is granted: read in the same statement as the lock, or before
    it, the head could miss the row appended just before. SQLite's BEGIN IMMEDIATE already holds the
    database's one write lock.
    """
    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    statement = _LOCKED_HEAD if dialect.name == "postgresql" else _HEAD_LINK
    row = db.execute(statement).first()
    return ChainHead(row[0], row[1]) if row else EMPTY_CHAIN


def head(session: Session) -> Decision | None:
    return session.scalar(select(Decision).order_by(Decision.id.desc()).limit(1))


def append(
    session: Session | Connection, decision: rules.Decision, *, head: ChainHead | None = None, **fields: Any
) -> dict[str, Any]:
    """Append one row under the chain lock; the caller's transaction commits it with everything else.
    `fields`: `new_row()`'s keyword arguments.

    The chain lock is held from here (or from the caller's `locked_head()`, whose answer is `head`)
    to the caller's commit, so callers write everything else first. Returns the row's columns as
    inserted. (Deciding workers on PostgreSQL append in one statement instead: adapters.outcome.)
    """
    return insert_linked(session, new_row(decision, **fields), head or locked_head(session))


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
    """A row's columns except its place in the chain (`id`, `prev_hash`, `hash`): all of it can be
    built before the chain lock is taken."""
    # Plain values, not a `Decision` instance: building one costs ~30 µs of CPU on the workers' hot
    # path, and reading it back through the ORM's attributes as much again.
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


def insert_linked(db: Session | Connection, values: dict[str, Any], head: ChainHead) -> dict[str, Any]:
    """Insert `new_row()`'s values as the row after `head`, hashed here. Returns every column."""
    row = SimpleNamespace(id=head.id + 1, **values, prev_hash=head.hash, hash="")
    row.hash = chain_hash(row.prev_hash, to_record(row))
    # A plain INSERT of exactly the values hashed above: the unit of work would cost more CPU.
    linked = vars(row)
    db.execute(_INSERT, linked)
    return linked


def chain_parameters(values: dict[str, Any]) -> dict[str, bytes]:
    """For the statement that links the row in the database (`linked_insert`): the canonical form
    around the id's digits, with the newline that follows the previous hash."""
    before, after = canonical_around_id(to_record(SimpleNamespace(id=None, **values, prev_hash=None, hash=None)))
    return {"chain_before": b"\n" + before, "chain_after": after}


def linked_insert(after: Any, prefix: str) -> Insert:
    """PostgreSQL: INSERT the row (its values as parameters named `<prefix><column>`) for each row of
    the CTE `after`, which yields the chain lock's key as `lock_key`, linked to the head read under
    that lock: `id`, `prev_hash` and `hash` (the same SHA-256 as `chain_hash`) are computed in the
    statement, so that the lock is held for no round trip to the client. With `chain_parameters()`.

    The head comes from audit_chain_head(), called LATERAL on `after`: only once `after` has produced
    its row, so whatever `after` locks is locked before the chain lock (one order for every writer).
    """
    head = func.audit_chain_head(after.c.lock_key).table_valued("head_id", "head_hash").lateral("head")
    new_id = func.coalesce(head.c.head_id, 0) + 1
    prev_hash = func.coalesce(head.c.head_hash, GENESIS)
    message = (
        func.convert_to(prev_hash, "UTF8")
        .op("||")(bindparam("chain_before", type_=LargeBinary))
        .op("||")(func.convert_to(cast(new_id, Text), "UTF8"))
        .op("||")(bindparam("chain_after", type_=LargeBinary))
    )
    computed = {"id": new_id, "prev_hash": prev_hash, "hash": func.encode(func.sha256(message), "hex")}
    table: Table = Decision.__table__  # type: ignore[assignment]
    columns = [computed.get(c.key, bindparam(prefix + c.key, type_=c.type)) for c in table.columns]
    rows = select(*columns).select_from(after.outerjoin(head, true()))
    return insert(table).from_select([c.key for c in table.columns], rows).returning(table.c.id)


def to_record(row: Decision | Row[Any] | SimpleNamespace) -> dict[str, Any]:
    """The row (anything with the `decisions` columns as attributes) under SPEC §6's field names, as
    the API, the CLI and the chain see it."""
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
