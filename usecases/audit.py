"""Reading and checking the audit log, and who may: every read is recorded before it happens."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.db import audit_log, audit_stats, auditors
from adapters.db.audit_log import Filters
from adapters.db.engine import Database
from adapters.db.models import AuditAccess, AuditorToken
from adapters.db.pseudonyms import pseudonym_key
from domain.audit_chain import email_digest
from domain.audit_verify import Anchor, Verdict, verify
from domain.times import format_time

AuditorError = auditors.AuditorError


def authenticate(db: Database, token: str | None) -> str | None:
    """The auditor's name, or None for a missing, unknown or revoked token."""
    if not token:
        return None
    with db.reading() as session:
        return auditors.authenticate(session, token)


def record_access(db: Database, who: str, action: str, details: dict[str, Any], decision_id: int | None = None) -> None:
    """Note a read of the audit log, committed on its own before the read, so no read goes unrecorded."""
    with db.transaction() as session:
        auditors.record_access(session, who, action, details, datetime.now(UTC), decision_id)


def decisions_page(
    db: Database, who: str, filters: Filters, limit: int, after_id: int, fmt: str
) -> list[dict[str, Any]]:
    """One page of records, oldest first, after the record of this read."""
    record_access(db, who, "decisions", {**filters.as_dict(), "limit": limit, "after": after_id or None, "format": fmt})
    with db.reading() as session:
        return list(audit_log.records(session, filters, limit, after_id))


@contextmanager
def streamed(
    db: Database, who: str, action: str, filters: Filters, limit: int | None = None
) -> Iterator[Iterator[dict[str, Any]]]:
    """Every matching record, oldest first, streamed from the database cursor (constant memory)."""
    record_access(db, who, action, filters.as_dict())
    with db.reading() as session:
        yield audit_log.records(session, filters, limit)


def digest_of(db: Database, configured_key: str | None, email: str, *, sandbox: bool = False) -> str:
    """The audit log's pseudonym of an email address, to filter on it (the stored key in the sandbox only)."""
    with db.reading() as session:
        return email_digest(pseudonym_key(session, configured_key, allow_stored=sandbox), email)


def verify_chain(db: Database, anchor: Anchor | None = None, start: Anchor | None = None) -> Verdict:
    """Walk the whole chain from the database, in constant memory, recording nothing (for a verification
    noted as a checkpoint, and split over processes on a long log, see usecases.audit_verification)."""
    with db.reading() as session:
        return verify(audit_log.records(session, Filters()), anchor, start)


@contextmanager
def export_prefix(db: Database, who: str, before: datetime) -> Iterator[Iterator[dict[str, Any]]]:
    """The chain's oldest rows, up to the first one decided at or after `before`: a contiguous prefix,
    so that the archive verifies on its own."""
    limit = format_time(before)  # one spelling for every time, so the strings compare as the times do
    with streamed(db, who, "export", Filters(until=before)) as rows:
        yield itertools.takewhile(lambda record: record["decidedAt"] < limit, rows)


def file_records(lines: Iterable[str], path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines archive; ValueError names the line that is not one."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{number}: not a JSON line") from None


def create_auditor(db: Database, name: str) -> str:
    with db.transaction() as session:
        return auditors.create_token(session, name, datetime.now(UTC))


def list_auditors(db: Database) -> Sequence[AuditorToken]:
    with db.reading() as session:
        return auditors.list_tokens(session)


def revoke_auditor(db: Database, name: str) -> None:
    with db.transaction() as session:
        auditors.revoke_token(session, name, datetime.now(UTC))


def access_log(db: Database, limit: int) -> Sequence[AuditAccess]:
    with db.reading() as session:
        return auditors.access_log(session, limit)


def decision_totals(db: Database) -> list[tuple[str, str, int]]:
    """(outcome, reason, count) over the whole log: the decisions counter every process can serve."""
    with db.reading() as session:
        return audit_stats.decision_counts(session)
