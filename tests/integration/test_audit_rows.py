"""Filling the audit log fast with rows that form a valid chain, for tests and the export measurement.

Run as a script to fill a database for measuring an export:
`DATABASE_URL=sqlite:////tmp/audit200k.db .venv/bin/python -m tests.integration.test_audit_rows 200000`
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Engine, insert, select

from adapters.db.models import Decision, RecoveryAttempt
from cli import main
from domain.audit_chain import GENESIS, chain_hash, email_digest
from domain.times import format_time
from tests.fakes import migrated

REASONS = ("verified", "face_not_recognized", "liveness_failed", "deepfake_detected", "no_face")
START = datetime(2026, 11, 1, tzinfo=UTC)


def chained_rows(count: int, first_id: int, prev: str, start: datetime, step: timedelta) -> Iterator[dict[str, Any]]:
    """Column dicts for `decisions`, hashed exactly as `audit_log.append` would hash them."""
    for offset in range(count):
        row_id = first_id + offset
        reason = REASONS[row_id % len(REASONS)]
        decided = start + step * offset
        record = {
            "id": row_id,
            "decidedAt": format_time(decided),
            "attemptId": f"att_{row_id}",
            "sessionId": f"sess_{row_id}",
            "clientReferenceId": f"att_{row_id}",
            "outcome": "approved" if reason == "verified" else "denied",
            "reason": reason,
            "sessionStatus": "complete",
            "recognition": "recognized",
            "liveness": "livenessDetected",
            "conversation": None,
            "matchedUserId": f"user_{row_id}" if reason == "verified" else None,
            "emailDigest": email_digest(b"bulk", f"user{row_id}@example.com"),
            "rulesVersion": "1",
            "eventId": f"evt_{row_id}",
            "messageId": None,
        }
        record["hash"] = chain_hash(prev, record)
        record["prevHash"] = prev
        prev = record["hash"]
        yield {
            "id": row_id,
            "decided_at": decided,
            "attempt_id": record["attemptId"],
            "session_id": record["sessionId"],
            "client_reference_id": record["clientReferenceId"],
            "outcome": record["outcome"],
            "reason": reason,
            "session_status": "complete",
            "recognition": "recognized",
            "liveness": "livenessDetected",
            "conversation": None,
            "matched_user_id": record["matchedUserId"],
            "email_digest": record["emailDigest"],
            "rules_version": "1",
            "event_id": record["eventId"],
            "message_id": None,
            "prev_hash": record["prevHash"],
            "hash": record["hash"],
        }


def fill(engine: Engine, count: int, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
    """Append `count` rows (and their attempts) after the current head, in bulk INSERTs of 5,000."""
    with engine.connect() as connection:
        last = connection.execute(select(Decision.id, Decision.hash).order_by(Decision.id.desc()).limit(1)).first()
        first_id, prev = (last.id + 1, last.hash) if last else (1, GENESIS)
    batch: list[dict[str, Any]] = []
    for row in chained_rows(count, first_id, prev, start, step):
        batch.append(row)
        if len(batch) == 5000:
            _insert(engine, batch)
            batch = []
    if batch:
        _insert(engine, batch)


def _insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    attempts = [
        {
            "id": row["attempt_id"],
            "session_id": row["session_id"],
            "client_reference_id": row["attempt_id"],
            "kind": "forgot_password",
            "status": row["outcome"],
            "flow": [],
            "session_url": None,
            "created_at": row["decided_at"],
            "decided_at": row["decided_at"],
        }
        for row in rows
    ]
    with engine.begin() as connection:
        connection.execute(insert(RecoveryAttempt), attempts)
        connection.execute(insert(Decision), rows)


def cli(database_url: str, *args: str) -> Any:
    env = {"DATABASE_URL": database_url, "AUDIT_PSEUDONYM_KEY": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_bulk_rows_form_a_chain_the_verifier_accepts(database_url: str) -> None:
    engine = migrated(database_url).engine
    fill(engine, 120)
    fill(engine, 30, start=START + timedelta(days=1))  # continues from the head
    result = cli(database_url, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("150 rows, chain intact")
    with engine.connect() as session:
        assert session.scalar(select(Decision.prev_hash).where(Decision.id == 121)) == session.scalar(
            select(Decision.hash).where(Decision.id == 120)
        )


if __name__ == "__main__":
    url = os.environ.get("DATABASE_URL", "sqlite:///audit-bench.db")
    if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).exists():
        sys.exit(f"{url} exists; use a fresh database")
    target = migrated(url).engine
    fill(target, int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    print(f"filled {url}")
