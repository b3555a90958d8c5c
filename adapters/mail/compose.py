"""Composing the owner's emails with the standard library's `EmailMessage`.

What an email may say: plain words for the account's owner. Never a reason code, a score or
anything biometric: the mailbox may not be the owner's alone, and the attacker may read it too.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from html import escape

SUBJECT = "Reset your password"
ALERT_SUBJECT = "Someone tried to recover your account"
LOCK_SUBJECT = "Account recovery is paused for your account"
MAIL_ID_HEADER = "X-Recovery-Mail-Id"

_NOT_YOU = (
    "If this was not you, do not open the link and contact your support team at once: "
    "someone may be trying to get into your account."
)
_PAUSED = (
    "Because of repeated refused attempts, account recovery is paused for your account until {until}. "
    "After that you can recover your account again; your support team can lift the pause sooner."
)


def compose(sender: str, to: str, reset_url: str, ttl_seconds: int, mail_id: str) -> EmailMessage:
    """The reset email. It carries the link only: never the reason, never anything biometric."""
    minutes = max(1, ttl_seconds // 60)
    intro = "This email was sent because someone recovered your account just now and we confirmed it was you."
    text = (
        "Hello,\n\n"
        f"{intro}\n"
        f"Open this link to choose a new password. It works once, for {minutes} minutes:\n\n"
        f"{reset_url}\n\n"
        f"{_NOT_YOU} Nothing changes unless the link is used.\n"
    )
    html = (
        f"<p>Hello,</p><p>{escape(intro)}</p>"
        f'<p><a href="{escape(reset_url)}">Choose a new password</a> (works once, for {minutes} minutes).</p>'
        f"<p>{escape(_NOT_YOU)} Nothing changes unless the link is used.</p>"
    )
    # 7bit keeps the link whole and readable in the raw message (quoted-printable would break it across
    # lines and escape its `=`); RFC 5322 allows it for ASCII lines of up to 998 characters.
    cte = "7bit" if reset_url.isascii() and len(reset_url) <= 900 else None
    return _message(sender, to, SUBJECT, mail_id, text, html, cte)


def compose_alert(
    sender: str, to: str, mail_id: str, *, refused: int, locked_until: datetime | None, lock_set: bool
) -> EmailMessage:
    """The owner's alert about refused recovery attempts; `lock_set`: this refusal paused their recovery."""
    until = _when(locked_until) if locked_until is not None else None
    if lock_set and until is not None:
        subject = LOCK_SUBJECT
        paragraphs = [
            f"Someone tried to recover your account {refused} times and every attempt was refused. "
            f"To protect you, account recovery is paused for your account until {until}.",
            "Your password has not changed and nobody got into your account.",
            "If it was you, try again after that time, or ask your support team to lift the pause.",
            "If it was not you, there is nothing to do: the pause protects your account. "
            "If it continues, contact your support team.",
        ]
    else:
        subject = ALERT_SUBJECT
        since = f" That makes {refused} refused attempts since our last message." if refused > 1 else ""
        paragraphs = [
            f"Someone just tried to recover your account, and the attempt was refused.{since}",
            "Your password has not changed and nobody got into your account.",
            "If it was you, you can simply try again.",
            "If it was not you, there is nothing to do. If it continues, contact your support team.",
        ]
        if until is not None:
            paragraphs.append(_PAUSED.format(until=until))
    text = "Hello,\n\n" + "\n\n".join(paragraphs) + "\n"
    html = "<p>Hello,</p>" + "".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs)
    return _message(sender, to, subject, mail_id, text, html, "7bit")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _message(
    sender: str, to: str, subject: str, mail_id: str, text: str, html_body: str, cte: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    # The sender's domain, not the host's name: make_msgid would look that up in DNS for every mail.
    message["Message-ID"] = make_msgid(idstring=mail_id, domain=parseaddr(sender)[1].partition("@")[2] or "localhost")
    message[MAIL_ID_HEADER] = mail_id
    message.set_content(text, cte=cte)
    html = f'<!doctype html><html><body style="font-family:sans-serif">{html_body}</body></html>'
    message.add_alternative(html, subtype="html", cte=cte)
    return message
