"""Where composed mail goes: the log (`console`), `.eml` files (`file`), or an SMTP server (`smtp`)."""

from __future__ import annotations

import logging
import os
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
    """One RFC 5322 `.eml` file per message, named by mail id and written atomically.

    Each file holds a live reset link, so it is readable by this service's user only (0600, in a
    directory made 0700 when this creates it), whatever the process's umask.
    """

    idempotent = True

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{message[MAIL_ID_HEADER] or secrets.token_hex(8)}.eml"
        temporary = self.directory / f".{name}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # an existing leftover keeps its old mode through O_CREAT
            out.write(bytes(message))
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
