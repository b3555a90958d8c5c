"""Composing the reset email with the standard library's `EmailMessage`."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from html import escape

SUBJECT = "Reset your password"
MAIL_ID_HEADER = "X-Recovery-Mail-Id"


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
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    # The sender's domain, not the host's name: make_msgid would look that up in DNS for every mail.
    message["Message-ID"] = make_msgid(idstring=mail_id, domain=parseaddr(sender)[1].partition("@")[2] or "localhost")
    message[MAIL_ID_HEADER] = mail_id
    # 7bit keeps the link whole and readable in the raw message (quoted-printable would break it across
    # lines and escape its `=`); RFC 5322 allows it for ASCII lines of up to 998 characters.
    cte = "7bit" if reset_url.isascii() and len(reset_url) <= 900 else None
    message.set_content(text, cte=cte)
    message.add_alternative(html, subtype="html", cte=cte)
    return message
