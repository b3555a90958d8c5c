"""Verification checkpoints (the `audit_checkpoints` table): how far the chain was last found intact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import AuditCheckpoint
from domain.audit_verify import Verdict
from domain.times import as_utc

FULL = "full"
INCREMENTAL = "incremental"


@dataclass(frozen=True)
class Checkpoint:
    id: int
    head_id: int
    head_hash: str
    started_after: int
    rows: int
    kind: str
    ok: bool
    bad_id: int | None
    detail: str
    verified_at: datetime
    verified_by: str
    seconds: float


def _plain(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        row.id,
        row.head_id,
        row.head_hash,
        row.started_after,
        row.rows,
        row.kind,
        row.ok,
        row.bad_id,
        row.detail,
        as_utc(row.verified_at),
        row.verified_by,
        row.seconds,
    )


def record(
    session: Session, verdict: Verdict, *, started_after: int, kind: str, by: str, at: datetime, seconds: float
) -> Checkpoint:
    """Note a verification. A broken chain is noted at its last good row, with the row that broke it."""
    head_id = verdict.count if verdict.ok else verdict.count - 1
    row = AuditCheckpoint(
        head_id=max(head_id, 0),
        head_hash=verdict.head,
        started_after=started_after,
        rows=max(verdict.count - started_after, 0),
        kind=kind,
        ok=verdict.ok,
        bad_id=verdict.bad_id if isinstance(verdict.bad_id, int) else None,
        detail=verdict.describe()[:2000],
        verified_at=at,
        verified_by=by[:128],
        seconds=seconds,
    )
    session.add(row)
    session.flush()
    return _plain(row)


def latest(session: Session, *, kind: str | None = None, good: bool = False) -> Checkpoint | None:
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
    if kind is not None:
        query = query.where(AuditCheckpoint.kind == kind)
    if good:
        query = query.where(AuditCheckpoint.ok.is_(True))
    row = session.scalars(query).first()
    return _plain(row) if row else None
