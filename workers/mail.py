"""Sending a queued reset email at most once."""

from __future__ import annotations

import logging

from adapters import outbox
from adapters.db import autocommit
from adapters.mailer import compose
from workers.context import Deps
from workers.decisions import utcnow

log = logging.getLogger(__name__)


def send_reset_email(deps: Deps, mail_id: str) -> bool:
    """Claim, send, mark sent.

    A backend error hands the mail back for a retry; a sender that dies between claim and
    mark leaves it `sending`, and it is not sent again: a missing email can be asked for
    anew, a doubled reset link cannot be taken back.

    Each step is one statement, atomic on its own, so none needs a transaction around it.
    """
    with autocommit(deps.engine) as connection:
        mail = outbox.claim(connection, mail_id, utcnow())
    if mail is None:
        log.info("mail %s: already claimed or sent; nothing to do", mail_id)
        return False
    to_address, reset_url = mail.to_address, mail.reset_url
    assert reset_url is not None  # noqa: S101
    message = compose(deps.settings.mail_from, to_address, reset_url, deps.settings.reset_token_ttl, mail_id)
    try:
        deps.mailer.send(message)
    except Exception:
        # The backend refused before taking the message: give it back for Dramatiq's retry.
        with autocommit(deps.engine) as connection:
            outbox.release(connection, mail_id)
        raise
    with autocommit(deps.engine) as connection:
        outbox.mark_sent(connection, mail_id, utcnow())
    log.info("mail %s: sent", mail_id)
    return True
