"""What one decision's page reads besides the row itself: its attempt's flow and start, and its neighbours' links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import Decision, RecoveryAttempt
from domain.times import as_utc


@dataclass(frozen=True)
class AttemptContext:
    flow: Any  # the flow the attempt was created with, as stored
    started_at: datetime


def attempt_context(session: Session, attempt_id: str) -> AttemptContext | None:
    row = session.execute(
        select(RecoveryAttempt.flow, RecoveryAttempt.created_at).where(RecoveryAttempt.id == attempt_id)
    ).first()
    return AttemptContext(row.flow, as_utc(row.created_at)) if row else None


def neighbour_links(session: Session, row_id: int) -> tuple[str | None, str | None]:
    """(the previous row's hash, the next row's prevHash): what this row's place in the chain is checked against."""
    previous = session.scalar(select(Decision.hash).where(Decision.id == row_id - 1))
    following = session.scalar(select(Decision.prev_hash).where(Decision.id == row_id + 1))
    return previous, following
