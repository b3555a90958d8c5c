"""The decision the worker writes holds no name, phone, image or raw email, only the keyed email digest."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from adapters.db.audit_log import to_record
from adapters.db.models import Decision
from domain.audit_chain import email_digest
from tests.fakes import make_deps, seed_attempt
from usecases import decide as decisions

PERSONAL = ("Ada Lovelace", "+44 20 7946 0000", "data:image/jpeg;base64,/9j/4AAQ", "ada@example.com", "Analytical")


def test_worker_decisions_keep_nothing_personal(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    for attempt, liveness in (("ok", "livenessDetected"), ("fake", "deepfakeDetected")):
        session_id = seed_attempt(deps, fake, attempt_id=attempt, email=f"{attempt}.Ada@Example.com", liveness=liveness)
        report = fake.sessions[session_id]["session"]["report"]["nodeReports"][0]["report"]
        report.update(name=PERSONAL[0], phone=PERSONAL[1], photo=PERSONAL[2], company=PERSONAL[4])
        decisions.process_session_event(deps, session_id, "evt", "msg")
    with deps.db.reading() as session:
        rows = session.scalars(select(Decision).order_by(Decision.id)).all()
    key = deps.digest_key()
    records = [to_record(row) for row in rows]
    assert [r["outcome"] for r in records] == ["approved", "denied"]
    dumped = json.dumps(records).lower()
    for value in (*PERSONAL, "ok.ada@example.com", "fake.ada@example.com"):
        assert value.lower() not in dumped
    assert records[0]["emailDigest"] == email_digest(key, "ok.ada@example.com")
    assert records[1]["emailDigest"] == email_digest(key, "fake.ada@example.com")
