"""The decision transaction against real databases."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier, Thread

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from adapters.db.attempts import create_attempt
from adapters.db.audit_log import to_record
from adapters.db.models import Decision, OutgoingMail, RecoveryAttempt, ResetToken
from adapters.db.users import add_user
from domain import rules
from domain.audit_chain import GENESIS, chain_hash
from domain.flow import build_recovery_flow
from domain.tokens import token_hash
from tests.fakes import append_decision, make_deps, seed_attempt
from usecases import decide as decisions
from usecases import send_mail as mail


def counts(deps) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with deps.db.reading() as db:
        return {
            model.__tablename__: db.scalar(select(func.count()).select_from(model))
            for model in (Decision, ResetToken, OutgoingMail)
        }


def test_approval_writes_row_token_and_mail_in_one_go(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    result = decisions.process_session_event(deps, session_id, event_id="evt_1", message_id="msg_1")
    assert result.status == "approved" and result.mail_id
    with deps.db.reading() as db:
        row = db.scalar(select(Decision))
        attempt = db.get(RecoveryAttempt, "att1")
        token = db.scalar(select(ResetToken))
    assert attempt is not None and attempt.status == "approved"
    assert (row.outcome, row.reason, row.event_id, row.message_id) == ("approved", "verified", "evt_1", "msg_1")
    assert row.matched_user_id == "u_att1" and row.prev_hash == GENESIS
    assert row.hash == chain_hash(GENESIS, to_record(row))
    assert "ada@example.com" not in str(to_record(row))
    assert token is not None and len(token.token_hash) == 64

    assert mail.send_reset_email(deps, result.mail_id) is True
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.com"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token_in_link = re.search(r"token=([A-Za-z0-9_-]+)", text).group(1)  # type: ignore[union-attr]
    assert token_hash(token_in_link) == token.token_hash
    assert mail.send_reset_email(deps, result.mail_id) is False  # never twice
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    with deps.db.reading() as db:
        sent = db.scalar(select(OutgoingMail))
    assert sent is not None and sent.status == "sent" and sent.reset_url is None


def test_rerunning_a_decided_session_changes_nothing(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    decisions.process_session_event(deps, session_id, "evt_1")
    before = counts(deps)
    calls = fake.calls
    again = decisions.process_session_event(deps, session_id, "evt_2")
    assert again.status == "already_decided"
    assert counts(deps) == before and fake.calls == calls  # decided attempts are not even fetched


def test_unfinished_and_unknown_sessions_record_nothing(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake, status="inProgress")
    assert decisions.process_session_event(deps, session_id).status == "not_finished"
    assert decisions.process_session_event(deps, "sess_nobody").status == "unknown_session"
    for hostile in ("sess\x00x", "s" * 129):
        assert decisions.process_session_event(deps, hostile).status == "unknown_session"
    assert counts(deps) == {"decisions": 0, "reset_tokens": 0, "outgoing_mail": 0}
    with deps.db.reading() as db:
        assert db.get(RecoveryAttempt, "att1").status == "pending"  # type: ignore[union-attr]


MANY = ("aaa@example.com", "aab@example.com", "aac@example.com")


@pytest.mark.parametrize(
    ("others", "user", "outcome"),
    [
        ((), True, ("approved", "verified")),
        ((), False, ("denied", "matched_face_has_no_local_user")),
        # More reported addresses than are read with the attempt, the recognised one sorting last:
        # the rules' lookup then asks the database itself.
        (("aaa@example.com", "aab@example.com", "aac@example.com"), True, ("approved", "verified")),
        (
            ("aaa@example.com", "aab@example.com", "aac@example.com"),
            False,
            ("denied", "matched_face_has_no_local_user"),
        ),
    ],
)
def test_the_recognised_user_is_found_however_many_addresses_the_session_reports(
    database_url: str, tmp_path: Path, others: tuple[str, ...], user: bool, outcome: tuple[str, str]
) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake, user=user)
    with deps.db.transaction() as db:
        for n, address in enumerate(others):
            add_user(db, address, user_id=f"other{n}")  # enrolled, but not the face FaceSign recognised
    nodes = fake.sessions[session_id]["session"]["report"]["nodeReports"]
    nodes += [{"nodeId": f"extra{n}", "outcome": "x", "report": {"email": a}} for n, a in enumerate(others)]
    decisions.process_session_event(deps, session_id)
    with deps.db.reading() as db:
        row = db.scalars(select(Decision)).one()
    assert (row.outcome, row.reason) == outcome
    assert row.matched_user_id == ("u_att1" if user else None)


def test_denial_issues_no_token(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake, recognition="newUser")
    result = decisions.process_session_event(deps, session_id)
    assert (result.status, result.mail_id) == ("denied", None)
    assert counts(deps) == {"decisions": 1, "reset_tokens": 0, "outgoing_mail": 0}


def test_a_refused_attempt_on_a_known_user_alerts_them_without_a_token(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake, liveness="deepfakeDetected")
    result = decisions.process_session_event(deps, session_id)
    assert result.status == "denied" and result.mail_id is not None
    assert counts(deps) == {"decisions": 1, "reset_tokens": 0, "outgoing_mail": 1}


def test_an_audit_row_that_cannot_be_written_leaves_nothing(database_url: str, tmp_path: Path) -> None:
    """The audit row is the last write of the decision's transaction: when it fails, the attempt's
    status, the token and the mail written before it are undone, and the message is retried."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    seed_attempt(deps, fake, attempt_id="att2", user=False)
    with deps.db.transaction() as db:  # a row that takes att1's session id: att1's own cannot be added
        append_decision(
            db,
            rules.Decision("denied", "no_face"),
            attempt_id="att2",
            session_id=session_id,
            client_reference_id=None,
            decided_at=datetime.now(UTC),
            event_id=None,
            message_id=None,
            digest_key=b"k",
        )
    with pytest.raises(IntegrityError):
        decisions.process_session_event(deps, session_id)
    assert counts(deps) == {"decisions": 1, "reset_tokens": 0, "outgoing_mail": 0}
    with deps.db.reading() as db:
        assert db.get(RecoveryAttempt, "att1").status == "pending"  # type: ignore[union-attr]


def test_racing_workers_make_one_decision_and_one_email(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    racers = 8
    barrier = Barrier(racers)
    results: list[decisions.Result] = []

    def race() -> None:
        barrier.wait()
        result = decisions.process_session_event(deps, session_id, "evt_dup")
        results.append(result)
        if result.mail_id:
            mail.send_reset_email(deps, result.mail_id)

    threads = [Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.status for r in results).count("approved") == 1
    assert counts(deps) == {"decisions": 1, "reset_tokens": 1, "outgoing_mail": 1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


def test_chain_links_successive_decisions(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    ids = [seed_attempt(deps, fake, attempt_id=f"a{i}", email=f"u{i}@example.com") for i in range(3)]
    for session_id in ids:
        decisions.process_session_event(deps, session_id)
    with deps.db.reading() as db:
        rows = list(db.scalars(select(Decision).order_by(Decision.id)))
    assert [r.id for r in rows] == [1, 2, 3]
    previous = GENESIS
    for row in rows:
        assert row.prev_hash == previous and row.hash == chain_hash(previous, to_record(row))
        previous = row.hash


@pytest.mark.parametrize(
    ("finished_after", "expected"),
    [(2, ("approved", "verified")), (29, ("approved", "verified")), (31, ("denied", "attempt_expired"))],
)
def test_a_late_decision_is_judged_by_the_signed_event_time(
    database_url: str, tmp_path: Path, finished_after: int, expected: tuple[str, str]
) -> None:
    """ATTEMPT_TTL=30: the worker only gets to the event at +40 s (a backlog, a stall, an outage)."""
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), attempt_ttl=30)
    created = datetime.now(UTC) - timedelta(seconds=40)
    with deps.db.transaction() as db:
        add_user(db, "ada@example.com", user_id="ada")
        create_attempt(db, "late", "sess_late", build_recovery_flow(), "https://x", created)
    fake.complete("sess_late", "late")
    event_at = created + timedelta(seconds=finished_after)
    result = decisions.process_session_event(deps, "sess_late", "evt", "msg", event_at)
    with deps.db.reading() as db:
        row = db.scalar(select(Decision))
    assert row is not None and (row.outcome, row.reason) == expected and result.status == expected[0]
    assert row.rules_version == rules.RULES_VERSION
