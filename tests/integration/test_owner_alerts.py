"""The owner hears of refused attempts on their account: exactly once per alerting decision, even
through a sender killed between claim and mark, and at most once an hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.db.models import OutgoingMail
from adapters.mail.backends import FileMailer
from domain.report import parse_session
from tests.fakes import FakeFaceSign, make_deps, seed_attempt
from usecases import decide
from usecases.deps import Deps
from usecases.reconcile import reconcile_once
from usecases.send_mail import send_reset_email

T0 = datetime.now(UTC)


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, not even `except Exception`."""


class DiesAfterHandOver(FileMailer):
    def send(self, message: EmailMessage) -> None:
        super().send(message)
        raise Killed


def refuse(deps: Deps, fake: FakeFaceSign, name: str, at: datetime, first: bool = False) -> decide.Result:
    session_id = seed_attempt(deps, fake, name, email="ada@example.com", user=first, liveness="deepfakeDetected")
    report = parse_session(fake.get_session(session_id))
    result = decide.record(deps, session_id, report, event_id=None, message_id=None, now=at)
    assert result.status == "denied"
    return result


def mails(mail_dir: Path) -> list[EmailMessage]:
    return [message_from_bytes(p.read_bytes(), policy=default) for p in sorted(mail_dir.glob("*.eml"))]  # type: ignore[misc]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_an_alert_interrupted_between_claim_and_mark_is_sent_exactly_once(database_url: str, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    deps, fake = make_deps(database_url, str(mail_dir))
    result = refuse(deps, fake, "att1", T0, first=True)
    assert result.mail_id is not None
    dying = FileMailer(str(mail_dir))
    deps.mailer = DiesAfterHandOver(str(mail_dir))
    with pytest.raises(Killed):
        send_reset_email(deps, result.mail_id)
    deps.mailer = dying
    # The worker is gone; its claim is older than the lease when the reconciler passes.
    tally = reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=5))
    assert tally["mail_resumed"] == 1
    reconcile_once(deps, now=datetime.now(UTC) + timedelta(minutes=10))  # a second pass sends nothing more
    sent = mails(mail_dir)
    assert [m["X-Recovery-Mail-Id"] for m in sent] == [result.mail_id]
    assert sent[0]["To"] == "ada@example.com"
    assert "Someone just tried to recover your account" in text_of(sent[0])
    with deps.db.reading() as session:
        assert session.scalar(select(OutgoingMail.status).where(OutgoingMail.id == result.mail_id)) == "sent"


def test_at_most_one_alert_an_hour_the_rest_counted_in_the_next(database_url: str, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    deps, fake = make_deps(database_url, str(mail_dir), recovery_lock_threshold=10, attempt_ttl=86400)
    first = refuse(deps, fake, "att1", T0, first=True)
    within = [refuse(deps, fake, f"att{n}", T0 + timedelta(minutes=10 * n)) for n in (2, 3, 4)]
    later = refuse(deps, fake, "att5", T0 + timedelta(minutes=61))
    assert first.mail_id and later.mail_id and all(r.mail_id is None for r in within)
    for result in (first, later):
        assert result.mail_id is not None
        send_reset_email(deps, result.mail_id)
    sent = {m["X-Recovery-Mail-Id"]: text_of(m) for m in mails(mail_dir)}
    assert set(sent) == {first.mail_id, later.mail_id}
    assert "since our last message" not in sent[first.mail_id]
    assert "That makes 4 refused attempts since our last message." in sent[later.mail_id]


def test_the_refusal_that_locks_the_account_tells_the_owner_even_within_the_hour(
    database_url: str, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail"
    deps, fake = make_deps(database_url, str(mail_dir))
    results = [refuse(deps, fake, f"att{n}", T0 + timedelta(minutes=n), first=n == 0) for n in range(4)]
    assert [r.mail_id is not None for r in results] == [True, False, True, False]
    for result in results:
        if result.mail_id:
            send_reset_email(deps, result.mail_id)
    subjects = sorted(m["Subject"] for m in mails(mail_dir))
    assert subjects == ["Account recovery is paused for your account", "Someone tried to recover your account"]
    notice = next(text_of(m) for m in mails(mail_dir) if m["Subject"].startswith("Account recovery is paused"))
    until = (T0 + timedelta(minutes=2) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert "3 times" in notice and until in notice


def test_an_approval_is_no_alert_and_a_stranger_is_not_written_to(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    approved = decide.process_session_event(deps, seed_attempt(deps, fake, "ok"))
    stranger = decide.process_session_event(
        deps, seed_attempt(deps, fake, "x", email="who@example.org", user=False, liveness="deepfakeDetected")
    )
    assert approved.status == "approved" and stranger.status == "denied" and stranger.mail_id is None
    with deps.db.reading() as session:
        assert session.scalars(select(OutgoingMail.kind)).all() == ["reset"]
