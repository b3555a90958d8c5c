"""Verifying the chain in full or from the latest checkpoint, and noting each verification as a checkpoint.

Verification reads in a read-only transaction (on SQLite it never takes the write lock, however long
it walks); the checkpoint is then written in a short transaction of its own.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.db import audit_log, checkpoints
from adapters.db.audit_log import Filters
from adapters.db.checkpoints import FULL, INCREMENTAL, Checkpoint
from adapters.db.engine import Database
from domain.audit_verify import Anchor, Verdict, verify
from usecases.parallel_verify import verify_in_ranges


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    kind: str  # full, incremental
    started_after: int  # the row it continued from: 0 from the first row, else the checkpoint's or archive's
    since: Checkpoint | None  # the checkpoint an incremental verification continued from
    seconds: float
    recorded: Checkpoint | None = None  # the checkpoint this verification was noted as

    @property
    def rows(self) -> int:
        return max(self.verdict.count - self.started_after, 0)

    @property
    def anchor(self) -> Anchor | None:
        """The head it found intact, to keep outside the database (None for an empty or broken chain)."""
        return Anchor(self.verdict.count, self.verdict.head) if self.verdict.ok and self.verdict.count else None


def process_name(role: str) -> str:
    """Who verified, for the checkpoint: the role, the host and the process."""
    return f"{role} on {socket.gethostname()} pid {os.getpid()}"


def _note(db: Database, verification: Verification, by: str) -> Verification:
    with db.transaction() as session:
        recorded = checkpoints.record(
            session,
            verification.verdict,
            started_after=verification.started_after,
            kind=verification.kind,
            by=by,
            at=datetime.now(UTC),
            seconds=verification.seconds,
        )
    return Verification(
        verification.verdict,
        verification.kind,
        verification.started_after,
        verification.since,
        verification.seconds,
        recorded,
    )


def verify_full(
    db: Database,
    by: str | None = None,
    *,
    anchors: Sequence[Anchor] = (),
    start: Anchor | None = None,
    parallel: bool = True,
) -> Verification:
    """Every row from the first (or from an archive's anchor), against every anchor given: the authority.
    A long log is checked in ranges by several processes (usecases.parallel_verify), with the same
    verdict. Noted as a full checkpoint when `by` names who ran it."""
    clock = time.monotonic()
    verdict = verify_in_ranges(db, start, anchors) if parallel else None
    if verdict is None:
        with db.reading() as session:
            verdict = verify(audit_log.records(session, Filters()), start=start, anchors=anchors)
    result = Verification(verdict, FULL, start.count if start else 0, None, time.monotonic() - clock)
    return _note(db, result, by) if by else result


def _rewritten(start: Anchor, since: Checkpoint | None, stored: str | None) -> Verdict:
    what = "is gone" if stored is None else "no longer has the hash it had"
    when = f"when checkpoint {since.id} verified it" if since else "when this process verified it"
    problem = f"row {start.count} {what} {when}: rewritten or truncated"
    return Verdict(False, start.count, start.hash, start.count, problem)


def verify_incremental(
    db: Database, by: str | None = None, *, after: Anchor | None = None, limit: int | None = None
) -> Verification:
    """Only the rows after the latest good checkpoint (or after `after`, a head this process verified
    itself), at most `limit` of them; from the first row when there is neither. Noted when `by` is given.

    The checkpoint's own row is re-read first: a rewrite or truncation reaching back to it fails here.
    """
    clock = time.monotonic()
    with db.reading() as session:
        since = checkpoints.latest(session, good=True) if after is None else None
        start = after or (Anchor(since.head_id, since.head_hash) if since and since.head_id else None)
        stored = audit_log.hash_of(session, start.count) if start else None
        if start is not None and stored != start.hash:
            verdict = _rewritten(start, since, stored)
        else:
            after_id = start.count if start else 0
            verdict = verify(audit_log.records(session, Filters(), limit, after_id), start=start)
    kind = INCREMENTAL if start else FULL
    result = Verification(verdict, kind, start.count if start else 0, since, time.monotonic() - clock)
    return _note(db, result, by) if by else result


@dataclass(frozen=True)
class ChainStatus:
    """What the dashboard says about the chain without walking all of it."""

    incremental: Verification  # the rows after the latest good checkpoint, checked for this load
    last_full: Checkpoint | None  # the latest full verification, whatever it found


def chain_status(db: Database) -> ChainStatus:
    """Checks only what was appended since the latest checkpoint, and records nothing."""
    incremental = verify_incremental(db)
    with db.reading() as session:
        last_full = checkpoints.latest(session, kind=FULL)
    return ChainStatus(incremental, last_full)
