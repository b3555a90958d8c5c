"""Composing the reset email and handing it to the configured backend."""

from __future__ import annotations

import logging
import secrets
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

SUBJECT = "Reset your password"


class Mailer(Protocol):
    # True when handing the same mail over twice still delivers it once (the file backend names
    # each file by mail id); only then may an interrupted send be repeated.
    idempotent: bool

    def send(self, message: EmailMessage) -> None: ...


def compose(sender: str, to: str, reset_url: str, ttl_seconds: int, mail_id: str) -> EmailMessage:
    """The reset email. It carries the link only: never the reason, never anything biometric."""
    minutes = max(1, ttl_seconds // 60)
    # 7bit keeps the link whole and readable in the raw message; quoted-printable would split and escape it.
    cte = "7bit" if reset_url.isascii() and len(reset_url) < 500 else None
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=mail_id)
    message["X-Recovery-Mail-Id"] = mail_id
    message.set_content(
        "Hello,\n\n"
        "You asked to recover your account and your identity was verified.\n"
        f"Open this link to choose a new password. It works once, for {minutes} minutes:\n\n"
        f"{reset_url}\n\n"
        "If you did not ask for this, ignore this email; nothing changes unless the link is used.\n",
        cte=cte,
    )
    message.add_alternative(
        '<!doctype html><html><body style="font-family:sans-serif">'
        "<p>Hello,</p><p>You asked to recover your account and your identity was verified.</p>"
        f'<p><a href="{escape(reset_url)}">Choose a new password</a> (works once, for {minutes} minutes).</p>'
        "<p>If you did not ask for this, ignore this email; nothing changes unless the link is used.</p>"
        "</body></html>",
        subtype="html",
        cte=cte,
    )
    return message


class ConsoleMailer:
    """Logs that a message went out; the link itself is a secret and stays out of the log."""

    idempotent = True

    def send(self, message: EmailMessage) -> None:
        log.info("mail sent (console backend) id=%s subject=%r", message["X-Recovery-Mail-Id"], message["Subject"])


class FileMailer:
    """One RFC 5322 `.eml` file per message, named by mail id and written atomically."""

    idempotent = True

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{message['X-Recovery-Mail-Id'] or secrets.token_hex(8)}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(bytes(message))
        temporary.replace(self.directory / name)


def make_mailer(backend: str, mail_dir: str, smtp_url: str | None = None) -> Mailer:
    if backend == "file":
        return FileMailer(mail_dir)
    if backend == "console":
        return ConsoleMailer()
    if backend == "smtp" and smtp_url:
        from adapters.smtp import SmtpMailer

        return SmtpMailer(smtp_url)
    raise ValueError(f"MAIL_BACKEND {backend!r} is not available in this build")
