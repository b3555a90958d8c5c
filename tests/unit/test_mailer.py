"""The reset email and the mail backends."""

from __future__ import annotations

import email
import logging
import os
import re
import stat
from email.message import EmailMessage, Message
from email.policy import default
from pathlib import Path

import pytest

from adapters.mail.backends import ConsoleMailer, FileMailer, make_mailer
from adapters.mail.compose import SUBJECT, compose
from adapters.mail.smtp import SmtpMailer

SENDER = "Account recovery <no-reply@example.com>"
TO = "alice@example.com"
LINK = "https://app.example.com/reset?token=tok_AbC-123_xyz&lang=en"


def message(to: str = TO, link: str = LINK, ttl: int = 900, mail_id: str = "mail-1") -> EmailMessage:
    return compose(SENDER, to, link, ttl, mail_id)


def parts(msg: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_content()  # type: ignore[attr-defined]
    return found


def test_compose_has_text_and_html_parts_both_carrying_the_link() -> None:
    msg = message()
    assert msg.get_content_type() == "multipart/alternative"
    bodies = parts(msg)
    assert set(bodies) == {"text/plain", "text/html"}
    assert LINK in bodies["text/plain"]
    assert 'href="https://app.example.com/reset?token=tok_AbC-123_xyz&amp;lang=en"' in bodies["text/html"]


def test_compose_headers() -> None:
    msg = message()
    assert msg["Subject"] == SUBJECT
    assert msg["From"] == SENDER
    assert msg["To"] == TO
    assert msg["Date"]
    assert re.fullmatch(r"<[^<>@\s]+@[^<>\s]+>", msg["Message-ID"])
    assert msg["X-Recovery-Mail-Id"] == "mail-1"


@pytest.mark.parametrize(("ttl", "minutes"), [(900, 15), (60, 1), (30, 1), (3600, 60)])
def test_compose_states_how_long_the_link_works(ttl: int, minutes: int) -> None:
    bodies = parts(message(ttl=ttl))
    assert f"{minutes} minutes" in bodies["text/plain"]
    assert f"{minutes} minutes" in bodies["text/html"]


FORBIDDEN = ("reason", "deepfake", "liveness", "recogni", "biometric", "denied", "score", "match")


def test_compose_says_nothing_about_how_the_decision_was_made() -> None:
    raw = bytes(message()).decode("utf-8", "replace").lower()
    for word in FORBIDDEN:
        assert word not in raw, word


def test_html_part_escapes_the_link() -> None:
    link = 'https://app.example.com/reset?token=x"><script>alert(1)</script>'
    html = parts(message(link=link))["text/html"]
    assert "<script>" not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def test_compose_round_trips_through_bytes() -> None:
    parsed = email.message_from_bytes(bytes(message()), policy=default)
    assert parsed["To"] == TO
    assert parsed["Subject"] == SUBJECT
    assert LINK in parts(parsed)["text/plain"]


def test_file_mailer_writes_one_parseable_eml_per_message(tmp_path: Path) -> None:
    directory = tmp_path / "mail" / "nested"  # created on first send
    mailer = FileMailer(directory)
    mailer.send(message(mail_id="mail-1"))
    files = sorted(directory.iterdir())
    assert [path.name for path in files] == ["mail-1.eml"]

    parsed = email.message_from_bytes(files[0].read_bytes(), policy=default)
    assert parsed["To"] == TO
    assert parsed["Subject"] == SUBJECT
    assert LINK in parts(parsed)["text/plain"]

    mailer.send(message(to="bob@example.com", mail_id="mail-2"))
    assert sorted(path.name for path in directory.iterdir()) == ["mail-1.eml", "mail-2.eml"]
    assert not list(directory.glob(".*"))  # no temporary files left behind


def test_mail_files_are_readable_by_the_service_alone(tmp_path: Path) -> None:
    """Each file holds a live reset link: 0600 in a 0700 directory, whatever the umask says."""
    directory = tmp_path / "mail"
    previous = os.umask(0o022)
    try:
        FileMailer(directory).send(compose("a@x", "b@y", "https://r/reset#token=live", 900, "mail_1"))
    finally:
        os.umask(previous)
    [written] = directory.iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_file_mailer_without_a_mail_id_still_writes_one_file(tmp_path: Path) -> None:
    msg = message()
    del msg["X-Recovery-Mail-Id"]
    FileMailer(tmp_path).send(msg)
    [written] = list(tmp_path.iterdir())
    assert written.suffix == ".eml"
    assert email.message_from_bytes(written.read_bytes())["To"] == TO


def test_console_mailer_keeps_the_link_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="adapters.mail.backends"):
        ConsoleMailer().send(message(mail_id="mail-7"))
    assert "mail-7" in caplog.text
    assert "tok_AbC-123_xyz" not in caplog.text


def test_make_mailer_picks_the_file_backend(tmp_path: Path) -> None:
    mailer = make_mailer("file", str(tmp_path / "out"))
    assert isinstance(mailer, FileMailer)
    mailer.send(message())
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["mail-1.eml"]


def test_make_mailer_picks_the_console_backend(tmp_path: Path) -> None:
    assert isinstance(make_mailer("console", str(tmp_path)), ConsoleMailer)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("backend", ["", "sendmail", "FILE", "ses"])
def test_make_mailer_refuses_unknown_backends(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ValueError, match="MAIL_BACKEND"):
        make_mailer(backend, str(tmp_path))


def test_make_mailer_picks_the_smtp_backend(tmp_path: Path) -> None:
    mailer = make_mailer("smtp", str(tmp_path), "smtp://localhost:2525")
    assert isinstance(mailer, SmtpMailer) and not mailer.idempotent
