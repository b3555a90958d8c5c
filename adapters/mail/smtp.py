"""The `smtp` mail backend: SMTP_URL, STARTTLS by default, raising only when the server did not accept.

SMTP_URL forms:
  smtp://[user:password@]host[:port]            STARTTLS required (port 587 by default)
  smtps://[user:password@]host[:port]           TLS from the first byte (port 465 by default)
  smtp://host[:port]?tls=none                   plain text, for a relay on localhost only
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.mail.compose import MAIL_ID_HEADER

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0


class MailDeliveryError(RuntimeError):
    """The server did not take responsibility for the message; it is safe to try again."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL: expected smtp://host[:port] or smtps://host[:port]")
    query = parse_qs(parts.query)
    tls = (query.get("tls") or ["starttls"])[0]
    if tls not in ("starttls", "none"):
        raise ValueError("SMTP_URL: tls= must be starttls or none")
    implicit = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls=not implicit and tls == "starttls",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class SmtpMailer:
    """One connection per message: reset emails are rare, and a fresh connection has no stale state."""

    idempotent = False  # a second hand-over is a second email in someone's inbox

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, ssl_context: ssl.SSLContext | None = None) -> None:
        self.target = parse_smtp_url(url)
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, message: EmailMessage) -> None:
        """Return once the server has answered 250 to the message; raise MailDeliveryError before that.

        Failures after that reply (a dropped connection during QUIT) are logged and swallowed:
        the server has taken the message, so sending it again would deliver it twice.
        """
        mail_id = message[MAIL_ID_HEADER]
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise MailDeliveryError(f"SMTP connection to {self.target.host} failed: {exc}") from exc
        try:
            self._hand_over(client, message)
        except (OSError, smtplib.SMTPException) as exc:
            _close(client)
            # `from None`: a refusal's text can quote the recipient's address, which stays out of logs.
            code = getattr(exc, "smtp_code", None)
            raise MailDeliveryError(
                f"SMTP server did not accept mail {mail_id}: {type(exc).__name__}{f' {code}' if code else ''}"
            ) from None
        try:
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail %s: accepted by the SMTP server; closing the connection failed (%s)", mail_id, exc)
            _close(client)

    def _connect(self) -> smtplib.SMTP:
        target = self.target
        if target.implicit_tls:
            return smtplib.SMTP_SSL(target.host, target.port, timeout=self.timeout, context=self.ssl_context)
        return smtplib.SMTP(target.host, target.port, timeout=self.timeout)

    def _hand_over(self, client: smtplib.SMTP, message: EmailMessage) -> None:
        client.ehlo()
        if self.target.starttls:
            # starttls() raises SMTPNotSupportedError when the server does not offer it: never fall back to plain.
            client.starttls(context=self.ssl_context)
            client.ehlo()
        if self.target.username is not None:
            client.login(self.target.username, self.target.password or "")
        refused = client.send_message(message)
        if refused:  # one recipient per message, so this is only reached if a server answers oddly
            raise smtplib.SMTPRecipientsRefused(refused)


def _close(client: smtplib.SMTP) -> None:
    try:
        client.close()
    except OSError:
        pass
