"""The events the customer's application receives: their types, their bodies and the retry schedule.

Bodies carry ids, never an email: the application maps `userId` to its own account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.times import format_time

APPROVED = "recovery.approved"
DENIED = "recovery.denied"
EXPIRED = "recovery.expired"
LOCKED = "recovery.locked"
REDEEMED = "reset_token.redeemed"
TYPES = (APPROVED, DENIED, EXPIRED, LOCKED, REDEEMED)

FIRST_BACKOFF = 5.0  # seconds before the first retry; doubles each time
LONGEST_BACKOFF = 3600.0


def _ids(attempt_id: str, session_id: str | None, user_id: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"attemptId": attempt_id, "sessionId": session_id}
    if user_id is not None:
        data["userId"] = user_id
    return data


def decision_event(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event an audit record (the API's field names) reports to the application."""
    data = _ids(record["attemptId"], record["sessionId"], record.get("matchedUserId"))
    data["decisionId"] = record["id"]
    if record["outcome"] == "approved":
        return APPROVED, data
    if record["reason"] == "attempt_expired":
        return EXPIRED, data
    # The application's backend may know why: the person at the page never does.
    return DENIED, {**data, "reason": record["reason"]}


def lock_event(attempt_id: str, session_id: str | None, user_id: str, until: datetime) -> tuple[str, dict[str, Any]]:
    """The refusal in `attempt_id` locked the user's recoveries until `until`."""
    return LOCKED, {**_ids(attempt_id, session_id, user_id), "lockedUntil": format_time(until)}


def redeemed_event(attempt_id: str, session_id: str | None, user_id: str) -> tuple[str, dict[str, Any]]:
    return REDEEMED, _ids(attempt_id, session_id, user_id)


def body(event_type: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body, built once and stored: every delivery of the event sends these same bytes."""
    return json.dumps({"type": event_type, "timestamp": format_time(at), "data": dict(data)}, separators=(",", ":"))


def retry_delay(attempts: int, window: float, jitter: float = 1.0) -> float:
    """Seconds to wait after the `attempts`-th failed delivery: exponential, from 5 s up to an hour,
    both scaled down for a retry window shorter than a day's worth of them. `jitter` in (0, 1]."""
    first = min(FIRST_BACKOFF, window / 64)
    longest = min(LONGEST_BACKOFF, window / 8)
    return float(min(longest, first * 2.0 ** max(0, attempts - 1)) * jitter)
