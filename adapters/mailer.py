"""Composing the reset email and handing it to the configured backend."""

from __future__ import annotations

import functools
import logging
import secrets
import socket
from email import headerregistry
from email.message import EmailMessage, MIMEPart
from email.policy import default
from email.utils import formatdate, make_msgid
from html import escape
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SUBJECT = "Reset your password"


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The standard registry, minus building a new class with type() on every header it parses."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[headerregistry.BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[headerregistry.BaseHeader]:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = super().__getitem__(name)
        return made


# email.policy.default in every respect but the class cache: same parsing, folding and output.
POLICY = default.clone(header_factory=_HeaderClasses())

# make_msgid looks the host name up on every call otherwise (a resolver call per email).
_fqdn = functools.cache(socket.getfqdn)


class Mailer(Protocol):
    # True when handing the same mail over twice still delivers it once (the file backend names
    # each file by mail id); only then may an interrupted send be repeated.
    idempotent: bool

    def send(self, message: EmailMessage) -> None: ...


def compose(sender: str, to: str, reset_url: str, ttl_seconds: int, mail_id: str) -> EmailMessage:
    """The reset email. It carries the link only: never the reason, never anything biometric."""
    minutes = max(1, ttl_seconds // 60)
    text = (
        "Hello,\n\n"
        "You asked to recover your account and your identity was verified.\n"
        f"Open this link to choose a new password. It works once, for {minutes} minutes:\n\n"
        f"{reset_url}\n\n"
        "If you did not ask for this, ignore this email; nothing changes unless the link is used.\n"
    )
    html = (
        '<!doctype html><html><body style="font-family:sans-serif">'
        "<p>Hello,</p><p>You asked to recover your account and your identity was verified.</p>"
        f'<p><a href="{escape(reset_url)}">Choose a new password</a> (works once, for {minutes} minutes).</p>'
        "<p>If you did not ask for this, ignore this email; nothing changes unless the link is used.</p>"
        "</body></html>"
    )
    message = EmailMessage(policy=POLICY)
    for name, value in (
        ("Subject", SUBJECT),
        ("From", sender),
        ("To", to),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", make_msgid(idstring=mail_id, domain=_fqdn())),
        ("X-Recovery-Mail-Id", mail_id),
    ):
        _set_header(message, name, value)
    boundary = _boundary(text, html)
    # 7bit keeps the link whole and readable in the raw message; quoted-printable would split and escape it.
    if reset_url.isascii() and len(reset_url) < 500:
        _alternative_7bit(message, text, html, boundary)
    else:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        # Otherwise serialising picks one and compiles a regular expression for it, every message.
        message.set_boundary(boundary)
    return message


def _set_header(message: EmailMessage, name: str, value: str) -> None:
    """Store a value that needs no encoding or folding as written: parsing it into the policy's header
    object only to print it back unchanged was most of the cost of composing. Anything else (non-ASCII,
    long, a line break, which the policy refuses) goes through the policy."""
    if value.isascii() and value.isprintable() and len(name) + len(value) + 2 <= POLICY.max_line_length:
        message.set_raw(name, value)
    else:
        message[name] = value


def _parsed(*headers: tuple[str, str]) -> tuple[tuple[str, Any], ...]:
    # Header objects are immutable strings: parsed once here, every message shares them.
    return tuple(POLICY.header_store_parse(name, value) for name, value in headers)


_MIME_VERSION = _parsed(("MIME-Version", "1.0"))
_PART_HEADERS = {
    "plain": _parsed(("Content-Type", 'text/plain; charset="utf-8"'), ("Content-Transfer-Encoding", "7bit")),
    "html": _parsed(
        ("Content-Type", 'text/html; charset="utf-8"'), ("Content-Transfer-Encoding", "7bit"), ("MIME-Version", "1.0")
    ),
}


def _alternative_7bit(message: EmailMessage, text: str, html: str, boundary: str) -> None:
    """What set_content() and add_alternative(cte="7bit") build, byte for byte, without parsing the
    same constant headers again for every message."""
    message.set_raw(*_MIME_VERSION[0])
    message["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    for subtype, body in (("plain", text), ("html", html)):
        part = MIMEPart(policy=POLICY)
        for name, value in _PART_HEADERS[subtype]:
            part.set_raw(name, value)
        # set_content's line-ending normalisation for 7bit text.
        part.set_payload(b"\n".join(body.encode("ascii").splitlines()).decode("ascii") + "\n")
        message.attach(part)


def _boundary(*bodies: str) -> str:
    """A boundary no body line can contain: "=_" never occurs in quoted-printable or base64, and
    the 7bit bodies are checked (128 random bits will not be in them, but checking is cheap)."""
    while True:
        boundary = f"=_{secrets.token_hex(16)}"
        if not any(boundary in body for body in bodies):
            return boundary


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
