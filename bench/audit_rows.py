"""Filling the audit log fast with rows that form a valid chain: for tests, and for the audit benchmark's
million rows.

Each row is hashed with `domain.audit_chain.chain_hash`, the function `audit verify` checks with, and its
attempt carries the recovery flow and node outcomes that lead to its reason, so the single-decision page
has a real path to draw. The content is a function of the row id: `REASONS[id % 5]` decides the reason
(ids divisible by 5 are approved), three "hot" users recur often, and every attempt took 15 to 254 seconds.
PostgreSQL gets the rows through COPY, other databases through batched INSERTs.

Run as a script to fill a database: `DATABASE_URL=… .venv/bin/python -m bench.audit_rows 200000`
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from adapters.db.models import Decision, RecoveryAttempt
from domain.audit_chain import GENESIS, chain_hash, email_digest
from domain.flow import CONFIRMED, build_recovery_flow
from domain.times import format_time

REASONS = ("verified", "face_not_recognized", "liveness_failed", "deepfake_detected", "no_face")
# (recognition, liveness, conversation) as the recovery flow's nodes report them on the way to each reason.
OUTCOMES = {
    "verified": ("recognized", "livenessDetected", CONFIRMED),
    "face_not_recognized": ("newUser", None, None),
    "liveness_failed": ("recognized", "noFace", CONFIRMED),
    "deepfake_detected": ("recognized", "deepfakeDetected", CONFIRMED),
    "no_face": ("noFace", None, None),
}
START = datetime(2026, 11, 1, tzinfo=UTC)
BATCH = 5000
USERS = 50_000
HOT_USERS = 3  # every 31st decision's recognised face is one of these: the "attempts per user" table has a top
DIGEST_KEY = b"bulk"
DECISION_COLUMNS = tuple(column.name for column in Decision.__table__.columns)
# What a decided attempt needs; the rest (the reconciler's schedule, the client's digest) keeps its default.
ATTEMPT_COLUMNS = (
    "id",
    "session_id",
    "client_reference_id",
    "kind",
    "status",
    "flow",
    "session_url",
    "created_at",
    "decided_at",
)


def matched_user(row_id: int, recognition: str | None) -> str | None:
    if recognition != "recognized":
        return None
    if row_id % 31 == 3:
        return f"user_hot_{row_id // 31 % HOT_USERS}"
    return f"user_{row_id * 7919 % USERS}"


def chained_rows(count: int, first_id: int, prev: str, start: datetime, step: timedelta) -> Iterator[dict[str, Any]]:
    """Column dicts for `decisions` (plus `created_at`, the attempt's start), hashed as `audit_log.append` would."""
    for offset in range(count):
        row_id = first_id + offset
        reason = REASONS[row_id % len(REASONS)]
        recognition, liveness, conversation = OUTCOMES[reason]
        user = matched_user(row_id, recognition)
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
            "recognition": recognition,
            "liveness": liveness,
            "conversation": conversation,
            "matchedUserId": user,
            "emailDigest": email_digest(DIGEST_KEY, f"{user}@example.com") if user else None,
            "rulesVersion": "1",
            "eventId": f"evt_{row_id}",
            "messageId": None,
        }
        digest = chain_hash(prev, record)
        yield {
            "id": row_id,
            "decided_at": decided,
            "attempt_id": record["attemptId"],
            "session_id": record["sessionId"],
            "client_reference_id": record["clientReferenceId"],
            "outcome": record["outcome"],
            "reason": reason,
            "session_status": "complete",
            "recognition": recognition,
            "liveness": liveness,
            "conversation": conversation,
            "matched_user_id": user,
            "email_digest": record["emailDigest"],
            "rules_version": "1",
            "event_id": record["eventId"],
            "message_id": None,
            "prev_hash": prev,
            "hash": digest,
            "created_at": decided - timedelta(seconds=15 + row_id * 37 % 240),
        }
        prev = digest


def fill(engine: Engine, count: int, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
    """Append `count` rows (and their attempts) after the current head."""
    with engine.connect() as connection:
        last = connection.execute(select(Decision.id, Decision.hash).order_by(Decision.id.desc()).limit(1)).first()
        first_id, prev = (last.id + 1, last.hash) if last else (1, GENESIS)
    flow = build_recovery_flow()
    write = _copy if engine.dialect.name == "postgresql" else _insert
    batch: list[dict[str, Any]] = []
    for row in chained_rows(count, first_id, prev, start, step):
        batch.append(row)
        if len(batch) == BATCH:
            write(engine, batch, flow)
            batch = []
    if batch:
        write(engine, batch, flow)


def attempt_of(row: dict[str, Any], flow: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row["attempt_id"],
        "session_id": row["session_id"],
        "client_reference_id": row["attempt_id"],
        "kind": "forgot_password",
        "status": row["outcome"],
        "flow": flow,
        "session_url": None,
        "created_at": row["created_at"],
        "decided_at": row["decided_at"],
    }


def _insert(engine: Engine, rows: list[dict[str, Any]], flow: Sequence[Any]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(RecoveryAttempt), [attempt_of(row, flow) for row in rows])
        connection.execute(insert(Decision), [{name: row[name] for name in DECISION_COLUMNS} for row in rows])


def _copy(engine: Engine, rows: list[dict[str, Any]], flow: Sequence[Any]) -> None:
    """COPY, many times faster than INSERT for a million rows; psycopg writes each value in its text form."""
    flow_text = json.dumps(flow)
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY recovery_attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    attempt = {**attempt_of(row, flow), "flow": flow_text}
                    copy.write_row([attempt[name] for name in ATTEMPT_COLUMNS])
            with cursor.copy(f"COPY decisions ({', '.join(DECISION_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[name] for name in DECISION_COLUMNS])
        connection.commit()
    finally:
        connection.close()


if __name__ == "__main__":
    from adapters.db.engine import Database
    from adapters.db.migrate import upgrade

    target = Database.connect(os.environ.get("DATABASE_URL", "sqlite:///audit-bench.db"))
    upgrade(target)
    fill(target.engine, int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    print(f"filled {target.url}")
