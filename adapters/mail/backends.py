"""Where composed mail goes: the log (`console`), `.eml` files (`file`), or an SMTP server (`smtp`)."""

from __future__ import annotations

import logging
import secrets
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from adapters.mail.compose import MAIL_ID_HEADER

log = logging.getLogger(__name__)


class Mailer(Protocol):
    # True when handing the same mail over twice still delivers it once (the file backend names
    # each file by mail id); only then may an interrupted send be repeated.
    idempotent: bool

    def send(self, message: EmailMessage) -> None: ...


class ConsoleMailer:
    """Logs that a message went out; the link itself is a secret and stays out of the log."""

    idempotent = True

    def send(self, message: EmailMessage) -> None:
        log.info("mail sent (console backend) id=%s subject=%r", message[MAIL_ID_HEADER], message["Subject"])


class FileMailer:
    """One RFC 5322 `.eml` file per message, named by mail id and written atomically."""

    idempotent = True

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{message[MAIL_ID_HEADER] or secrets.token_hex(8)}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(bytes(message))
        temporary.replace(self.directory / name)


def make_mailer(backend: str, mail_dir: str, smtp_url: str | None = None) -> Mailer:
    if backend == "file":
        return FileMailer(mail_dir)
    if backend == "console":
        return ConsoleMailer()
    if backend == "smtp" and smtp_url:
        from adapters.mail.smtp import SmtpMailer

        return SmtpMailer(smtp_url)
    raise ValueError(f"MAIL_BACKEND {backend!r} is not available in this build")
