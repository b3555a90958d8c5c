"""Anchors kept outside the database, written automatically, and read back to check the chain against.

The AnchorWriter is what the reconciler (and `audit anchor --every`) calls on every pass: once per
AUDIT_ANCHOR_INTERVAL it verifies the rows appended since its last anchor, notes the checkpoint, and
writes `COUNT:HASH` with a timestamp to AUDIT_ANCHOR_SINK. A sink that is down costs nothing but a log
line: the anchor waits in memory and is written again, oldest first, with backoff, on later passes.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.anchors import AnchorSink, AnchorSinkError, make_sink
from adapters.db.engine import Database
from config import Settings
from domain.audit_verify import Anchor
from domain.times import format_time
from usecases.audit_verification import Verification, process_name, verify_incremental

log = logging.getLogger(__name__)

RECORD_TYPE = "facesign-recovery.audit-anchor"
MAX_PENDING = 1000  # anchors kept while the sink is down; beyond that the oldest are dropped, with a warning
RETRY_FIRST, RETRY_MAX = 30.0, 1800.0  # seconds between attempts at a sink that is down, doubling
ROWS_PER_PASS = 2_000_000  # a first verification of a long log is spread over passes, so each one ends


def anchor_record(verification: Verification, at: datetime, by: str) -> dict[str, Any]:
    anchor = verification.anchor
    if anchor is None:
        raise ValueError("only an intact, non-empty chain has an anchor")
    return {
        "type": RECORD_TYPE,
        "anchor": str(anchor),
        "count": anchor.count,
        "hash": anchor.hash,
        "at": format_time(at),
        "by": by,
        "verification": verification.kind,
    }


@dataclass
class AnchorWriter:
    db: Database
    sink: AnchorSink | None
    interval: float
    by: str
    clock: Callable[[], float] = time.monotonic
    pending: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_PENDING))
    head: Anchor | None = None  # the last head this writer verified itself: later passes continue from it
    due: float = 0.0  # the first pass anchors at once
    retry_at: float = 0.0
    failures: int = 0

    @classmethod
    def for_settings(cls, db: Database, settings: Settings, role: str) -> AnchorWriter:
        sink = make_sink(settings.audit_anchor_sink, settings.audit_anchor_token)
        return cls(db, sink, float(settings.audit_anchor_interval), process_name(role))

    def tick(self, force: bool = False) -> Verification | None:
        """Anchor if the interval has passed (or `force`), and retry anchors a down sink left pending.
        Never raises: the reconciler's passes and decisions go on whatever happens here."""
        try:
            return self._tick(force)
        except Exception:
            log.exception("audit anchor pass failed; trying again next interval")
            self.due = self.clock() + self.interval
            return None

    def _tick(self, force: bool) -> Verification | None:
        now = self.clock()
        if self.pending and now >= self.retry_at:
            self.flush()
        if not force and now < self.due:
            return None
        verification = verify_incremental(self.db, self.by, after=self.head, limit=ROWS_PER_PASS)
        caught_up = verification.rows < ROWS_PER_PASS
        self.due = now + self.interval if caught_up else now
        if not verification.verdict.ok:
            log.error("audit chain verification failed: %s", verification.verdict.describe())
            return verification
        self.send(verification)
        return verification

    def anchored(self, verification: Verification) -> None:
        """Someone else (the reconciler's full verification) verified the chain: anchor its head and
        count it as this interval's anchor."""
        self.send(verification)
        self.due = self.clock() + self.interval

    def send(self, verification: Verification) -> None:
        """Continue from this verification's head, and write its anchor (kept for later if the sink is down)."""
        if verification.anchor is None:
            return
        self.head = verification.anchor
        if self.sink is None:
            return
        if len(self.pending) == self.pending.maxlen:
            log.warning("anchor sink down too long: dropping the oldest pending anchor %s", self.pending[0]["anchor"])
        self.pending.append(anchor_record(verification, datetime.now(UTC), self.by))
        if self.clock() >= self.retry_at:  # while backing off from a failure, it waits its turn
            self.flush()

    def flush(self) -> bool:
        """Write pending anchors oldest first; on the first failure keep the rest and back off."""
        if self.sink is None:
            return True
        while self.pending:
            try:
                self.sink.write(self.pending[0])
            except AnchorSinkError as exc:
                self.failures += 1
                delay = min(RETRY_FIRST * 2 ** (self.failures - 1), RETRY_MAX, self.interval)
                self.retry_at = self.clock() + delay * random.uniform(0.8, 1.2)  # noqa: S311  (jitter)
                log.warning("%s; %d anchor(s) kept, retrying in about %.0f s", exc, len(self.pending), delay)
                return False
            self.pending.popleft()
            self.failures = 0
        return True

    def close(self) -> None:
        """The shutdown anchor: one last verification and write, whatever the interval says."""
        self.tick(force=True)
        if self.pending:  # one last try, whatever the backoff says
            self.flush()
        if self.pending:
            log.warning("%d anchor(s) could not be written before shutdown", len(self.pending))


def read_anchors(lines: Iterable[str], path: Path) -> list[Anchor]:
    """Anchors from a file: JSON lines as the sinks write them, or bare `COUNT:HASH` lines as `audit anchor`
    prints them. Blank lines and `#` comments are skipped; ValueError names any other line."""
    anchors = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path.name} line {number}"
        try:
            if line.startswith("{"):
                doc = json.loads(line)
                anchor = Anchor.parse(str(doc.get("anchor") or f"{doc['count']}:{doc['hash']}"))
                if doc.get("at"):
                    where += f", written {doc['at']}"
            else:
                anchor = Anchor.parse(line)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not an anchor ({exc})") from None
        anchors.append(Anchor(anchor.count, anchor.hash, where))
    return anchors


def anchor_now(sink: AnchorSink | None, verification: Verification, by: str) -> str | None:
    """Write the anchor of a verification just made (by `audit verify` or `audit anchor`) to the sink;
    returns the problem when the sink refused it (the caller says so and carries on)."""
    if sink is None or verification.anchor is None:
        return None
    try:
        sink.write(anchor_record(verification, datetime.now(UTC), by))
    except AnchorSinkError as exc:
        return str(exc)
    return None
