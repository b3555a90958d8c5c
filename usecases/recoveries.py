"""Starting a recovery, reporting its status (never its reason), and redeeming its reset token."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

from adapters.db import attempts, tokens
from adapters.facesign.client import FaceSignError
from adapters.logs import log_context
from domain.app_events import redeemed_event
from domain.audit_chain import address_digest
from domain.rules import deadline
from domain.times import format_time
from usecases import app_events
from usecases.deps import Deps

log = logging.getLogger(__name__)

KINDS = ("forgot_password",)
# A pending attempt reads `pending` this long past its deadline: a person who finished in time may be
# waiting on our own delays (a queue backlog, a retry), and the reconciler records the expiry of one
# who did not within about a pass of the deadline. The recovery page waits as long before giving up.
DECISION_GRACE = timedelta(seconds=60)


class StartedRecovery(TypedDict):
    id: str
    url: str
    expiresAt: str


def start_recovery(
    deps: Deps, kind: str, now: datetime, *, budget: float | None = None, client: str | None = None
) -> StartedRecovery:
    """Write the attempt, then create its FaceSign session, then give the attempt the session.

    The attempt is written first, so a database outage (DatabaseUnavailable) costs no vendor session.
    When FaceSign cannot create the session (FaceSignError), the attempt is closed as `failed` at once;
    if even that write fails, the reconciler closes it later (`close_unstarted`). `budget`: seconds
    the vendor call may take in all. `client`: the caller's address, kept only as a keyed digest.
    """
    attempt_id = secrets.token_urlsafe(24)  # 192 random bits: unguessable, never sequential
    with deps.db.transaction() as session:
        attempts.create_attempt(
            session, attempt_id, None, deps.flow, None, now, kind, client_digest=_client_digest(deps, client)
        )
    try:
        answer = deps.facesign.create_session(
            attempt_id, {"recoveryType": kind, "requestedAt": format_time(now)}, deps.flow, budget=budget
        )
        session_id, url = _session_of(answer)
    except FaceSignError:
        _fail(deps, attempt_id, now)
        raise
    with deps.db.transaction() as session:
        attempts.attach_session(session, attempt_id, session_id, url)
    with log_context(attempt_id=attempt_id, session_id=session_id):
        log.info("recovery started")
    return {"id": attempt_id, "url": url, "expiresAt": format_time(deadline(now, deps.policy))}


def _session_of(answer: Any) -> tuple[str, str]:
    try:
        session_id, url = answer["session"]["id"], answer["clientSecret"]["url"]
    except (KeyError, TypeError):
        session_id = url = None
    if not isinstance(session_id, str) or not session_id or not isinstance(url, str) or not url:
        raise FaceSignError("POST /sessions answered without a session id and URL")
    return session_id, url


def _fail(deps: Deps, attempt_id: str, now: datetime) -> None:
    try:
        with deps.db.transaction() as session:
            attempts.fail_unstarted(session, now, now, attempt_id)
    except Exception as exc:  # the reconciler closes it later
        log.warning("recovery %s: could not close the failed start (%s)", attempt_id, type(exc).__name__)


def recovery_status(deps: Deps, attempt_id: str, now: datetime) -> str | None:
    """pending, approved, denied or expired; None for an unknown attempt (or one that never started).

    Past its deadline a pending attempt reads `pending` for DECISION_GRACE more, and for as long as a
    status event signed before the deadline is on record: such a person finished in time and waits on
    us. After that it reads `expired`; the reconciler records that decision.
    """
    with deps.db.reading() as session:
        found = attempts.status_of(session, attempt_id)
    if found is None or found.status == attempts.FAILED:
        return None
    if found.status != attempts.PENDING:
        return found.status
    ends = deadline(found.created_at, deps.policy)
    if now <= ends + DECISION_GRACE or (found.last_event_at is not None and found.last_event_at <= ends):
        return "pending"
    return "expired"


def redeem_reset_token(
    deps: Deps,
    token: str,
    now: datetime,
    enqueue: Callable[[Sequence[int]], object] | None = None,
    *,
    client: str | None = None,
) -> str | None:
    """The user id, exactly once per unexpired token; None for anything else.

    The application's `reset_token.redeemed` event is written in the same transaction; `enqueue`
    hands its deliveries to the workers once committed (the reconciler finds any it misses).
    `client` as for start_recovery.
    """
    digest = _client_digest(deps, client)
    with deps.db.transaction() as session:
        user_id = tokens.redeem(session, token, now, client_digest=digest)
        if user_id is None:
            return None
        attempt_id, session_id = tokens.attempt_of(session, token)
        deliveries = app_events.emit(session, deps.settings, redeemed_event(attempt_id, session_id, user_id), now)
    if deliveries and enqueue is not None:
        enqueue(deliveries)
    return user_id


def _client_digest(deps: Deps, client: str | None) -> str | None:
    return address_digest(deps.digest_key(), client) if client else None
