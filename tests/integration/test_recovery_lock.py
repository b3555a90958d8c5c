"""The per-account recovery lock, decided from the audit log inside each decision's transaction."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.models import AuditAccess, Decision, OutgoingMail
from adapters.db.users import add_user
from adapters.mail.backends import FileMailer
from cli import main
from config import Settings
from domain.flow import build_recovery_flow
from domain.report import parse_session
from tests.fakes import TEST_PSEUDONYM_KEY, FakeFaceSign, make_deps
from usecases import decide
from usecases.deps import Deps

WORKERS = 4
ATTACKS = 10
USER = "ada"
EMAIL = "ada@example.com"


def new_attempt(
    deps: Deps, fake: FakeFaceSign, attempt_id: str, attack: bool, liveness: str = "livenessDetected"
) -> str:
    """An attempt on Ada's account; an attack passes the face checks but cannot state her email."""
    session_id = f"sess_{attempt_id}"
    with deps.db.transaction() as session:
        create_attempt(session, attempt_id, session_id, build_recovery_flow(), "https://x", datetime.now(UTC))
    complete(fake, attempt_id, attack, liveness)
    return session_id


def complete(fake: FakeFaceSign, attempt_id: str, attack: bool, liveness: str = "livenessDetected") -> None:
    fake.complete(f"sess_{attempt_id}", attempt_id, email=EMAIL, liveness=liveness)
    if attack:
        fake.sessions[f"sess_{attempt_id}"]["session"]["report"]["nodeReports"][2]["outcome"] = "not_confirmed"


def decide_in_child(database_url: str, mail_dir: str, attempt_ids: list[str], barrier: Any) -> None:
    """One worker process deciding its share of the attacks, all workers at once."""
    deps = Deps(
        settings=Settings(
            database_url=database_url,
            mail_backend="file",
            mail_dir=mail_dir,
            require_conversation_confirmation=True,
            audit_pseudonym_key=TEST_PSEUDONYM_KEY,
        ),
        db=Database.connect(database_url),
        facesign=FakeFaceSign(),  # type: ignore[arg-type]
        mailer=FileMailer(mail_dir),
    )
    for attempt_id in attempt_ids:
        complete(deps.facesign, attempt_id, attack=True)  # type: ignore[arg-type]
    barrier.wait(timeout=60)
    for attempt_id in attempt_ids:
        result = decide.process_session_event(deps, f"sess_{attempt_id}", f"evt_{attempt_id}")
        assert result.status == "denied", result


def cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, catch_exceptions=False)


def test_concurrent_attacks_lock_the_account_at_exactly_the_threshold(postgres_url: str, tmp_path: Path) -> None:
    mail_dir = str(tmp_path / "mail")
    deps, fake = make_deps(postgres_url, mail_dir, require_conversation_confirmation=True)
    with deps.db.transaction() as session:
        add_user(session, EMAIL, user_id=USER)
    attacks = [f"attack{n}" for n in range(ATTACKS)]
    for attempt_id in attacks:
        new_attempt(deps, fake, attempt_id, attack=True)
    context = multiprocessing.get_context("spawn")  # no engine or connection crosses a fork
    barrier = context.Barrier(WORKERS)
    shares = [attacks[worker::WORKERS] for worker in range(WORKERS)]
    children = [
        context.Process(target=decide_in_child, args=(postgres_url, mail_dir, share, barrier)) for share in shares
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0] * WORKERS

    # In chain order: the threshold's worth of refusals, then every later attack meets the lock.
    with deps.db.reading() as session:
        rows = session.execute(select(Decision.reason, Decision.matched_user_id).order_by(Decision.id)).all()
    assert [reason for reason, _ in rows] == ["identity_not_confirmed"] * 3 + ["account_recovery_locked"] * 7
    assert {user for _, user in rows} == {USER}

    listed = cli(postgres_url, "users", "locks")
    assert listed.exit_code == 0 and f"\n{USER}  " in listed.output and "(1 locked)" in listed.output

    good = decide.process_session_event(deps, new_attempt(deps, fake, "good1", attack=False))
    assert good.status == "denied"
    with deps.db.reading() as session:
        assert (
            session.scalar(select(Decision.reason).where(Decision.attempt_id == "good1")) == "account_recovery_locked"
        )
        kinds = sorted(session.scalars(select(OutgoingMail.kind)).all())
    # One alert for the first refusal, one notice when the lock was set; the rest fall in the hour's cap.
    assert kinds == ["attempt_alert", "lock_notice"]

    unlocked = cli(postgres_url, "users", "unlock", USER)
    assert unlocked.exit_code == 0 and unlocked.output.strip() == f"unlocked {USER}"
    assert "(0 locked)" in cli(postgres_url, "users", "locks").output
    after = decide.process_session_event(deps, new_attempt(deps, fake, "good2", attack=False))
    assert after.status == "approved" and after.mail_id
    with deps.db.reading() as session:
        actions = session.scalars(select(AuditAccess.action).order_by(AuditAccess.id)).all()
    assert actions == ["users.locks", "users.unlock", "users.locks"]


def test_the_lock_ends_a_window_after_the_last_refusal(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), recovery_lock_window=600)
    with deps.db.transaction() as session:
        add_user(session, EMAIL, user_id=USER)
    start = datetime.now(UTC)
    for n in range(3):
        session_id = new_attempt(deps, fake, f"deepfake{n}", attack=False, liveness="deepfakeDetected")
        report = parse_session(fake.get_session(session_id))
        result = decide.record(
            deps, session_id, report, event_id=None, message_id=None, now=start + timedelta(seconds=n)
        )
        assert result.status == "denied"
    last = start + timedelta(seconds=2)

    def good_at(name: str, at: datetime) -> str | None:
        session_id = new_attempt(deps, fake, name, attack=False)
        report = parse_session(fake.get_session(session_id))
        decide.record(deps, session_id, report, event_id=None, message_id=None, now=at)
        with deps.db.reading() as session:
            return session.scalar(select(Decision.reason).where(Decision.session_id == session_id))

    assert good_at("inside", last + timedelta(seconds=599)) == "account_recovery_locked"
    assert good_at("after", last + timedelta(seconds=600)) == "verified"
    with deps.db.reading() as session:
        rows = session.execute(select(Decision.reason, Decision.matched_user_id).order_by(Decision.id)).all()
    assert rows[:3] == [("deepfake_detected", USER)] * 3  # deepfake denials name the user they targeted


def test_unlocking_a_user_who_is_not_locked_changes_nothing(database_url: str, tmp_path: Path) -> None:
    deps, _ = make_deps(database_url, str(tmp_path / "mail"))
    with deps.db.transaction() as session:
        add_user(session, EMAIL, user_id=USER)
    result = cli(database_url, "users", "unlock", USER)
    assert result.exit_code == 0 and "not locked" in result.output
    unknown = CliRunner().invoke(main, ["users", "unlock", "nobody"], env={"DATABASE_URL": database_url})
    assert unknown.exit_code == 1 and "no user with id nobody" in unknown.output
