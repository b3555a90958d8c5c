"""Concurrent appends keep one chain; a cursor walk sees every row exactly once while rows are appended."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from threading import Thread
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db import audit_log
from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.models import Decision, RecoveryAttempt
from adapters.mail.backends import FileMailer
from config import Settings
from domain import rules
from domain.report import parse_session
from tests.fakes import TEST_PSEUDONYM_KEY, FakeFaceSign, append_decision, make_deps, seed_attempt
from tests.integration.test_audit_rows import cli
from tests.unit.test_audit_api import audit_app, auth
from usecases import decide
from usecases.deps import Deps

PROCESSES = 4
PER_PROCESS = 12


def decide_in_child(database_url: str, mail_dir: str, worker: int, barrier: Any) -> None:
    """One worker process: decides its own attempts through the real decision path, all at once with the others."""
    deps = Deps(
        settings=Settings(
            database_url=database_url, mail_backend="file", mail_dir=mail_dir, audit_pseudonym_key=TEST_PSEUDONYM_KEY
        ),
        db=Database.connect(database_url),
        facesign=FakeFaceSign(),  # type: ignore[arg-type]
        mailer=FileMailer(mail_dir),
    )
    fake: FakeFaceSign = deps.facesign  # type: ignore[assignment]
    for n in range(PER_PROCESS):
        attempt_id = f"w{worker}_{n}"
        liveness = "livenessDetected" if n % 2 else "deepfakeDetected"
        fake.complete(f"sess_{attempt_id}", attempt_id, email=f"{attempt_id}@example.com", liveness=liveness)
    barrier.wait(timeout=60)
    for n in range(PER_PROCESS):
        result = decide.process_session_event(deps, f"sess_w{worker}_{n}", f"evt_{worker}_{n}", f"msg_{worker}_{n}")
        assert result.status in ("approved", "denied"), result


def test_worker_processes_appending_at_once_keep_one_chain(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    for worker in range(PROCESSES):
        for n in range(PER_PROCESS):
            seed_attempt(deps, fake, attempt_id=f"w{worker}_{n}", email=f"w{worker}_{n}@example.com")
    context = multiprocessing.get_context("spawn")  # no engine or connection crosses a fork
    barrier = context.Barrier(PROCESSES)
    children = [
        context.Process(target=decide_in_child, args=(database_url, str(tmp_path / "mail"), worker, barrier))
        for worker in range(PROCESSES)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0] * PROCESSES

    total = PROCESSES * PER_PROCESS
    with deps.db.reading() as session:
        rows = session.scalars(select(Decision).order_by(Decision.id)).all()
    assert [row.id for row in rows] == list(range(1, total + 1))
    assert len({row.prev_hash for row in rows}) == total
    assert {row.attempt_id for row in rows} == {f"w{w}_{n}" for w in range(PROCESSES) for n in range(PER_PROCESS)}
    result = cli(database_url, "audit", "verify")
    assert result.exit_code == 0 and result.output.startswith(f"{total} rows, chain intact"), result.output


def append_one(services: Any, name: str) -> None:
    """A real append: a new attempt and its decision, under the chain lock, in one transaction."""
    now = datetime.now(UTC)
    with services.deps.db.transaction() as session:
        create_attempt(session, name, f"sess_{name}", [], "https://x", now)
        append_decision(
            session,
            rules.Decision("denied", "no_face", session_status="complete", recognition="noFace"),
            attempt_id=name,
            session_id=f"sess_{name}",
            client_reference_id=name,
            decided_at=now,
            event_id=None,
            message_id=None,
            digest_key=b"k",
        )


def test_an_appended_row_reads_back_as_the_record_it_was_hashed_as(database_url: str) -> None:
    _, services, _ = audit_app(database_url, rows=0)
    now = datetime.now(UTC)
    with services.deps.db.transaction() as session:
        create_attempt(session, "cols", "sess_cols", [], "https://x", now)
        values = append_decision(
            session,
            rules.Decision("denied", "no_face", session_status="complete", recognition="noFace"),
            attempt_id="cols",
            session_id="sess_cols",
            client_reference_id="cols",
            decided_at=now,
            event_id=None,
            message_id=None,
            digest_key=b"k",
        )
    with services.deps.db.reading() as session:
        stored = session.scalars(select(Decision)).one()
    assert audit_log.to_record(stored) == values


def test_a_cursor_walk_sees_every_row_exactly_once_while_rows_are_appended(database_url: str) -> None:
    client, services, token = audit_app(database_url, rows=25)
    background = Thread(target=lambda: [append_one(services, f"bg{n}") for n in range(60)])
    background.start()
    seen: list[int] = []
    cursor = None
    try:
        while True:
            body = client.get(
                "/audit/decisions?limit=4" + (f"&cursor={cursor}" if cursor else ""), headers=auth(token)
            ).json()
            seen += [item["id"] for item in body["items"]]
            # The log grows under the walk on every page, whatever the background thread's pace.
            append_one(services, f"fg{len(seen)}")
            cursor = body["next"]
            if cursor is None:
                break
    finally:
        background.join(timeout=60)
    assert seen == list(range(1, len(seen) + 1)), "a row was skipped or seen twice"
    assert len(seen) > 25 + 6  # the walk went on into rows appended after it started
    assert cli(database_url, "audit", "verify").exit_code == 0


def test_a_decision_waiting_for_the_chain_lock_links_to_the_row_committed_meanwhile(
    postgres_url: str, tmp_path: Path
) -> None:
    """A decision takes the chain lock, then reads the head: the head must be read after the lock is
    granted (a snapshot taken before it would miss the row committed meanwhile)."""
    deps, fake = make_deps(postgres_url, str(tmp_path / "mail"))
    first, second = (seed_attempt(deps, fake, attempt_id=name, user=False) for name in ("first", "second"))
    report = parse_session(fake.get_session(second))
    holder = Session(deps.db.engine)
    transaction = holder.begin()
    head = audit_log.lock_chain(holder)
    assert head == audit_log.EMPTY_CHAIN
    append_decision(
        holder,
        rules.Decision("denied", "no_face"),
        attempt_id="first",
        session_id=first,
        client_reference_id="first",
        decided_at=datetime.now(UTC),
        event_id=None,
        message_id=None,
        digest_key=b"k",
        head=head,
    )
    results: list[decide.Result] = []
    waiter = Thread(target=lambda: results.append(decide.record(deps, second, report, event_id=None, message_id=None)))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "the second decision did not wait for the chain lock"
    transaction.commit()
    holder.close()
    waiter.join(timeout=30)
    assert [r.status for r in results] == ["denied"]
    with deps.db.reading() as session:
        rows = session.scalars(select(Decision).order_by(Decision.id)).all()
    assert [(row.id, row.session_id) for row in rows] == [(1, first), (2, second)]
    assert rows[1].prev_hash == rows[0].hash


def test_a_decision_waiting_for_its_attempt_does_not_hold_the_chain_lock(postgres_url: str, tmp_path: Path) -> None:
    """A decision locks its attempt's row before it takes the chain lock: while one decision waits for
    its attempt (held here by another transaction), decisions of other attempts go on."""
    deps, fake = make_deps(postgres_url, str(tmp_path / "mail"))
    blocked, free = (seed_attempt(deps, fake, attempt_id=name, user=False) for name in ("blocked", "free"))
    holder = deps.db.engine.connect()
    transaction = holder.begin()
    holder.execute(select(RecoveryAttempt).where(RecoveryAttempt.id == "blocked").with_for_update())
    results: list[decide.Result] = []
    waiter = Thread(target=lambda: results.append(decide.process_session_event(deps, blocked)))
    waiter.start()
    try:
        waiter.join(timeout=1.0)
        assert waiter.is_alive(), "the decision did not wait for its attempt's row"
        other = Thread(target=lambda: results.append(decide.process_session_event(deps, free)))
        other.start()
        other.join(timeout=10)
        assert [r.status for r in results] == ["denied"], "another attempt's decision waited for the chain lock"
    finally:
        transaction.commit()
        holder.close()
        waiter.join(timeout=30)
    assert [r.status for r in results] == ["denied", "denied"]
