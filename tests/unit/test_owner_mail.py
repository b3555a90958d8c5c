"""What the account's owner reads: plain words, never a reason code, a score or anything biometric."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from adapters.mail.compose import ALERT_SUBJECT, LOCK_SUBJECT, compose, compose_alert
from domain.rules import REASONS

SENDER = "Account recovery <no-reply@example.com>"
UNTIL = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
# Words that would tell the reader (who may be the attacker) how the check works or why it refused.
FORBIDDEN = re.compile(
    r"face|liveness|live person|deepfake|biometric|recogni|video|camera|photo|score|"
    + "|".join(re.escape(reason) for reason in REASONS),
    re.IGNORECASE,
)


def bodies(message: EmailMessage) -> list[str]:
    return [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]  # type: ignore[attr-defined]


def every_email() -> list[EmailMessage]:
    return [
        compose(SENDER, "ada@example.com", "https://app.example.com/reset#token=abc", 900, "mail_1"),
        compose_alert(SENDER, "ada@example.com", "mail_2", refused=1, locked_until=None, lock_set=False),
        compose_alert(SENDER, "ada@example.com", "mail_3", refused=4, locked_until=UNTIL, lock_set=False),
        compose_alert(SENDER, "ada@example.com", "mail_4", refused=3, locked_until=UNTIL, lock_set=True),
    ]


@pytest.mark.parametrize("message", every_email(), ids=["reset", "alert", "alert-while-locked", "lock"])
def test_no_email_names_a_reason_a_score_or_anything_biometric(message: EmailMessage) -> None:
    for text in [message["Subject"], *bodies(message)]:
        assert not FORBIDDEN.search(text), FORBIDDEN.search(text)


def test_the_reset_email_says_why_it_came_and_what_to_do_if_it_was_not_them() -> None:
    text = bodies(every_email()[0])[0]
    assert "just now" in text
    assert "If this was not you" in text and "contact" in text


def test_an_alert_says_it_was_refused_and_what_to_do() -> None:
    message = every_email()[1]
    text = bodies(message)[0]
    assert message["Subject"] == ALERT_SUBJECT
    assert "refused" in text
    assert "If it was you" in text and "try again" in text
    assert "If it was not you, there is nothing to do" in text
    assert "If it continues" in text


def test_an_alert_counts_the_refusals_since_the_last_one_and_says_when_a_pause_ends() -> None:
    text = bodies(every_email()[2])[0]
    assert "4 refused attempts since our last message" in text
    assert "paused" in text and "2026-12-01 09:30 UTC" in text


def test_the_lock_notice_says_recovery_is_paused_why_and_until_when() -> None:
    message = every_email()[3]
    text = bodies(message)[0]
    assert message["Subject"] == LOCK_SUBJECT
    assert "3 times" in text and "every attempt was refused" in text
    assert "paused for your account until 2026-12-01 09:30 UTC" in text
    assert "nobody got into your account" in text
