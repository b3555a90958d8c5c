"""Starting a recovery, reporting its status (never its reason), and redeeming its reset token."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypedDict

from adapters.db import attempts, tokens
from adapters.logs import log_context
from domain.app_events import redeemed_event
from domain.rules import deadline
from domain.times import format_time
from usecases import app_events
from usecases.deps import Deps

log = logging.getLogger(__name__)

KINDS = ("forgot_password",)


class StartedRecovery(TypedDict):
    id: str
    url: str
    expiresAt: str


def start_recovery(deps: Deps, kind: str, now: datetime) -> StartedRecovery:
    """Create the FaceSign session and the attempt; raises FaceSignError when FaceSign cannot."""
    attempt_id = secrets.token_urlsafe(24)  # 192 random bits: unguessable, never sequential
    answer = deps.facesign.create_session(
        attempt_id, {"recoveryType": kind, "requestedAt": format_time(now)}, deps.flow
    )
    session_id = answer["session"]["id"]
    url = answer["clientSecret"]["url"]
    with deps.db.transaction() as session:
        attempts.create_attempt(session, attempt_id, session_id, deps.flow, url, now, kind)
    with log_context(attempt_id=attempt_id, session_id=session_id):
        log.info("recovery started")
    return {"id": attempt_id, "url": url, "expiresAt": format_time(deadline(now, deps.policy))}


def recovery_status(deps: Deps, attempt_id: str, now: datetime) -> str | None:
    """pending, approved, denied or expired; None for an unknown attempt."""
    with deps.db.reading() as session:
        found = attempts.status_of(session, attempt_id)
    if found is None:
        return None
    status, created_at = found
    if status == attempts.PENDING and now > deadline(created_at, deps.policy):
        return "expired"  # the reconciler records the decision; the page need not wait for it
    return status


def redeem_reset_token(
    deps: Deps, token: str, now: datetime, enqueue: Callable[[Sequence[int]], object] | None = None
) -> str | None:
    """The user id, exactly once per unexpired token; None for anything else.

    The application's `reset_token.redeemed` event is written in the same transaction; `enqueue`
    hands its deliveries to the workers once committed (the reconciler finds any it misses).
    """
    with deps.db.transaction() as session:
        user_id = tokens.redeem(session, token, now)
        if user_id is None:
            return None
        attempt_id, session_id = tokens.attempt_of(session, token)
        deliveries = app_events.emit(session, deps.settings, redeemed_event(attempt_id, session_id, user_id), now)
    if deliveries and enqueue is not None:
        enqueue(deliveries)
    return user_id
