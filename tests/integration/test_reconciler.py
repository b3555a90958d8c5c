"""The reconciler heals what webhooks, queues and workers lose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier, Thread
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.db import outbox
from adapters.db.attempts import create_attempt
from adapters.db.models import Decision, OutgoingMail, RecoveryAttempt
from adapters.db.users import add_user
from adapters.facesign.budget import Caller, budget_for
from adapters.facesign.client import BudgetExhausted, FaceSignNotFound, FaceSignTransient
from domain.flow import build_recovery_flow
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


def test_an_unknown_session_expires_past_ttl_a_vendor_outage_only_much_later(database_url: str, tmp_path: Path) -> None:
    """FaceSign saying "no such session" is an answer; FaceSign not answering is no evidence either way."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake, attempt_id="gone")
    seed_attempt(deps, fake, attempt_id="down", email="b@example.com")
    errors = {"sess_gone": FaceSignNotFound("404", 404), "sess_down": FaceSignTransient("503")}

    def failing(session_id: str, **_: object) -> dict[str, object]:
        raise errors[session_id]

    fake.get_session = failing  # type: ignore[method-assign]
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"not_finished": 1, "vendor_unavailable": 1}
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=45)) == {
        "denied": 1,
        "vendor_unavailable": 1,
    }
    assert (attempt_status(deps, "gone"), attempt_status(deps, "down")) == ("expired", "pending")
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(hours=2)) == {"denied": 1}
    assert attempt_status(deps, "down") == "expired"


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


# Seeing everything: a crowd of abandoned attempts cannot starve the rest, and no failure stops a pass.


def seed_many(deps, fake, prefix: str, count: int, created_at: datetime, status: str) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` attempts created at `created_at` whose sessions FaceSign reports with `status`."""
    ids = [f"{prefix}{n}" for n in range(count)]
    with deps.db.transaction() as db:
        for attempt_id in ids:
            create_attempt(db, attempt_id, f"sess_{attempt_id}", build_recovery_flow(), "https://x", created_at)
    for attempt_id in ids:
        fake.complete(f"sess_{attempt_id}", attempt_id, email="crowd@example.com", status=status)
    return ids


def pending(deps, ids: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    with deps.db.reading() as db:
        rows = db.execute(select(RecoveryAttempt.id, RecoveryAttempt.status).where(RecoveryAttempt.id.in_(ids)))
        return [attempt_id for attempt_id, status in rows if status == "pending"]


def test_abandoned_attempts_cannot_starve_lost_webhooks(database_url: str, tmp_path: Path) -> None:
    """600 abandoned attempts (an attacker's, say) and 6 finished sessions whose webhooks were lost: each pass
    spends at most RECONCILE_MAX_CALLS, every attempt is looked at in the order it fell due, so whatever
    falls due is reached within (what fell due before it) / RECONCILE_MAX_CALLS passes; before, the same
    oldest 500 were taken on every pass and the newer ones were never reached."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), reconcile_max_calls=300)
    start = datetime.now(UTC)
    crowd = seed_many(deps, fake, "crowd", 600, start, "inProgress")
    with deps.db.transaction() as db:
        add_user(db, "lost@example.com", user_id="u_lost")
    lost = seed_many(deps, fake, "lost", 6, start + timedelta(seconds=100), "complete")
    for attempt_id in lost:
        fake.complete(f"sess_{attempt_id}", attempt_id, email="lost@example.com")

    for seconds in (120, 170, 200):
        before = fake.calls
        reconcile_once(deps, now=start + timedelta(seconds=seconds))
        assert fake.calls - before <= 300
    assert pending(deps, lost) == []  # decided within three passes, never starved
    assert len(pending(deps, crowd)) == 600  # still unfinished, still waiting, not yet expired

    # Later newcomers: the crowd backs off (each look doubles its wait), so they are reached within two passes.
    newcomers = seed_many(deps, fake, "new", 6, start + timedelta(seconds=300), "complete")
    for attempt_id in newcomers:
        fake.complete(f"sess_{attempt_id}", attempt_id, email="lost@example.com")
    approved = 0
    for seconds in (370, 400):
        before = fake.calls
        approved += reconcile_once(deps, now=start + timedelta(seconds=seconds))["approved"]
        assert fake.calls - before <= 300
    assert pending(deps, newcomers) == [] and approved == 6


def test_a_large_enough_budget_decides_everything_in_one_pass(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), reconcile_max_calls=1000)
    start = datetime.now(UTC)
    crowd = seed_many(deps, fake, "crowd", 600, start, "inProgress")
    lost = seed_many(deps, fake, "lost", 6, start, "complete")
    tally = reconcile_once(deps, now=start + LATER)
    assert pending(deps, lost) == [] and tally["denied"] == 6  # no such local user: denied, but decided
    assert tally["not_finished"] == 600 and len(pending(deps, crowd)) == 600


def test_an_attempt_that_fails_is_counted_and_the_pass_goes_on(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    for i in range(5):
        seed_attempt(deps, fake, attempt_id=f"a{i}", email=f"u{i}@example.com")
    real = fake.get_session

    def broken_for_one(session_id: str, **options: Any) -> dict[str, object]:
        if session_id == "sess_a2":
            raise RuntimeError("a bug, say")
        return real(session_id, **options)

    fake.get_session = broken_for_one  # type: ignore[method-assign]
    tally = reconcile_once(deps, now=datetime.now(UTC) + LATER)
    assert tally["errors"] == 1 and tally["approved"] == 4 and tally["mail"] == 4
    assert attempt_status(deps, "a2") == "pending"
    # It went to the back of the line: the next pass looks again, later.
    fake.get_session = real  # type: ignore[method-assign]
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER * 2)["approved"] == 1


def test_broken_mail_costs_the_mail_not_the_decisions(database_url: str, tmp_path: Path) -> None:
    """An unwritable mail directory (a file stands where it should be): all 14 lost webhooks are decided in
    one pass; the mails wait, pending, and the first pass after the repair sends every one."""
    blocker = tmp_path / "mail"
    blocker.write_text("not a directory")
    deps, fake = make_deps(database_url, str(blocker))
    for i in range(14):
        seed_attempt(deps, fake, attempt_id=f"a{i}", email=f"u{i}@example.com")
    tally = reconcile_once(deps, now=datetime.now(UTC) + LATER)
    assert tally["approved"] == 14
    assert tally["mail_failed"] >= 1 and tally["mail_failed"] + tally["mail_deferred"] == 14 and not tally["mail"]
    with deps.db.reading() as db:
        assert set(db.scalars(select(OutgoingMail.status))) == {"pending"}

    blocker.unlink()
    tally = reconcile_once(deps, now=datetime.now(UTC) + LATER * 2)
    assert tally["mail"] == 14
    assert len(list(blocker.glob("*.eml"))) == 14


def test_an_attempt_that_never_got_a_session_is_closed(database_url: str, tmp_path: Path) -> None:
    """The vendor call failed and even recording that failed: nobody holds the id, nothing stays pending."""
    deps, _ = make_deps(database_url, str(tmp_path / "mail"))
    with deps.db.transaction() as db:
        create_attempt(db, "unstarted", None, build_recovery_flow(), None, datetime.now(UTC))
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(seconds=30)) == {}  # may still be starting
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=10)) == {"start_failed": 1}
    assert attempt_status(deps, "unstarted") == "failed"


def test_a_lost_webhook_of_a_session_finished_in_time_is_approved_late(database_url: str, tmp_path: Path) -> None:
    """The event that reported the finish could not be acted on (FaceSign down while the worker fetched):
    its signed time is kept, and the reconciler, deciding long after the deadline, judges by it."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), attempt_ttl=30)
    session_id = seed_attempt(deps, fake)
    finished = datetime.now(UTC) + timedelta(seconds=2)
    real = fake.get_session
    fake.get_session = lambda _, **__: (_ for _ in ()).throw(FaceSignTransient("503"))  # type: ignore[method-assign]
    with pytest.raises(FaceSignTransient):
        decisions.process_session_event(deps, session_id, "evt", event_at=finished)
    fake.get_session = real  # type: ignore[method-assign]
    tally = reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=5))
    assert tally["approved"] == 1 and attempt_status(deps) == "approved"


def test_without_any_event_the_reconciler_judges_by_when_it_looked(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), attempt_ttl=30)
    seed_attempt(deps, fake)
    tally = reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=5))
    assert tally == {"denied": 1} and attempt_status(deps) == "expired"


def test_attempts_the_budget_kept_from_asking_stay_due(database_url: str, tmp_path: Path) -> None:
    """Nothing was asked, so nothing is put off: once budget is back, the very next pass decides them
    (a backoff would leave them for minutes). The pass stops at the first refusal."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake, attempt_id="one")
    seed_attempt(deps, fake, attempt_id="two", email="b@example.com")
    answer = fake.get_session
    asked: list[str] = []

    def refused(session_id: str, **options: Any) -> dict[str, Any]:
        asked.append(session_id)
        raise BudgetExhausted("no budget", 5.0)

    fake.get_session = refused  # type: ignore[method-assign]
    now = datetime.now(UTC) + LATER
    assert reconcile_once(deps, now=now) == {"no_budget": 2}
    assert len(asked) == 1
    fake.get_session = answer  # type: ignore[method-assign]
    assert reconcile_once(deps, now=now + timedelta(seconds=1)) == {"approved": 2, "mail": 2}


def test_the_reconciler_only_spends_the_budget_others_leave_over(database_url: str, tmp_path: Path) -> None:
    """Workers have used three of a ten-a-minute budget: the reconciler's share (three) is gone, so
    it fetches nothing and leaves the stale attempts for a later pass; expiry needs no budget."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    seed_attempt(deps, fake, attempt_id="one")
    seed_attempt(deps, fake, attempt_id="two", email="b@example.com")
    budget = budget_for(10, 0.3, None)
    answer = fake.get_session

    def budgeted(session_id: str, *, caller: Caller = Caller.WORKER, **options: Any) -> dict[str, Any]:
        wait = budget.take(caller)
        if wait is not None:
            raise BudgetExhausted("no budget", wait)
        return answer(session_id, **options)

    fake.get_session = budgeted  # type: ignore[method-assign]
    for _ in range(3):
        assert budget.take(Caller.WORKER) is None
    assert reconcile_once(deps, now=datetime.now(UTC) + LATER) == {"no_budget": 2}
    assert fake.calls == 0
    assert budget.take(Caller.WORKER) is None  # the workers' own share is untouched
    # Never asked is no evidence: past the deadline the attempts wait a whole ATTEMPT_TTL, as in an outage.
    assert reconcile_once(deps, now=datetime.now(UTC) + timedelta(seconds=1801)) == {"no_budget": 2}
    tally = reconcile_once(deps, now=datetime.now(UTC) + timedelta(seconds=2 * 1800 + 1))
    assert tally == {"denied": 2} and attempt_status(deps, "one") == "expired"
