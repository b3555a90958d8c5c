"""The reconciler heals what webhooks, queues and workers lose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier, Thread

from sqlalchemy import func, select

from adapters.db import outbox
from adapters.db.models import Decision, OutgoingMail, RecoveryAttempt
from adapters.facesign.client import FaceSignNotFound, FaceSignTransient
from tests.fakes import make_deps, seed_attempt
from usecases import decide as decisions
from usecases.reconcile import reconcile_once

LATER = timedelta(seconds=120)


def attempt_status(deps, attempt_id: str = "att1") -> str:  # type: ignore[no-untyped-def]
    with deps.db.reading() as db:
        return db.get(RecoveryAttempt, attempt_id).status


def test_a_lost_webhook_is_decided_once_stale(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake)
    assert reconcile_once(deps) == {}  # not stale yet: RECONCILE_AFTER is 60 s
    tally = reconcile_once(deps, now=datetime.now(UTC) + LATER)
    assert tally == {"approved": 1, "mail": 1}
    assert attempt_status(deps) == "approved"
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    with deps.db.reading() as db:
        row = db.scalar(select(Decision))
    assert row is not None and row.event_id is None and row.message_id is None
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {}


def test_unfinished_sessions_wait_then_expire(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake, status="inProgress")
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"not_finished": 1}
    assert attempt_status(deps) == "pending"
    tally = reconcile_once(deps, now=datetime.now(UTC) + timedelta(seconds=1801))
    assert tally == {"denied": 1}
    assert attempt_status(deps) == "expired"
    with deps.db.reading() as db:
        assert db.scalar(select(Decision.reason)) == "attempt_expired"


def test_vendor_outage_or_unknown_session_expires_only_past_ttl(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake, attempt_id="gone")
    seed_attempt(deps, fake, attempt_id="down", email="b@example.com")
    errors = {"sess_gone": FaceSignNotFound("404", 404), "sess_down": FaceSignTransient("503")}

    def failing(session_id: str) -> dict[str, object]:
        raise errors[session_id]

    fake.get_session = failing  # type: ignore[method-assign]
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"not_finished": 2}
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(hours=1)) == {"denied": 2}
    assert {attempt_status(deps, "gone"), attempt_status(deps, "down")} == {"expired"}


def test_mail_nobody_sent_is_sent_once(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    result = decisions.process_session_event(deps, session_id, "evt")  # decided, but the mail enqueue was lost
    assert result.mail_id
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"mail": 1}
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {}
    with deps.db.reading() as db:
        assert db.scalar(select(OutgoingMail.status)) == "sent"
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


def test_concurrent_reconcilers_decide_once(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    for i in range(5):
        seed_attempt(deps, fake, attempt_id=f"a{i}", email=f"u{i}@example.com")
    barrier = Barrier(3)
    later = datetime.now(UTC) + LATER

    def run() -> None:
        barrier.wait()
        reconcile_once(deps, now=later)

    threads = [Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with deps.db.reading() as db:
        assert db.scalar(select(func.count()).select_from(Decision)) == 5
        assert db.scalar(select(func.count()).select_from(OutgoingMail).where(OutgoingMail.status == "sent")) == 5
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 5


def test_a_send_killed_midway_is_resumed_only_where_repeating_is_harmless(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    mail_id = decisions.process_session_event(deps, session_id, "evt").mail_id
    assert mail_id
    with deps.db.transaction() as db:  # a worker claimed the mail, then was SIGKILLed
        assert outbox.claim(db, mail_id, datetime.now(UTC)) is not None

    deps.mailer.idempotent = False  # type: ignore[misc]  # as SMTP: never hand it over twice
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {}
    assert not list((tmp_path / "mail").glob("*.eml"))

    deps.mailer.idempotent = True  # type: ignore[misc]  # the file backend: same file, same name
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"mail_resumed": 1, "mail": 1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    with deps.db.reading() as db:
        assert db.scalar(select(OutgoingMail.status)) == "sent"
