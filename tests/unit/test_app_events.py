"""The application's events: which decision reports what, the retry schedule, and the signature
as the Standard Webhooks specification defines it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from adapters.appevents.sender import EventSender
from domain.app_events import body, decision_event, lock_event, redeemed_event, retry_delay

KEY = b"application-events-secret-32-byt"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def record(outcome: str, reason: str, user: str | None = "u1") -> dict[str, Any]:
    return {
        "id": 7,
        "attemptId": "att1",
        "sessionId": "sess1",
        "outcome": outcome,
        "reason": reason,
        "matchedUserId": user,
    }


@pytest.mark.parametrize(
    ("outcome", "reason", "user", "event_type", "data"),
    [
        ("approved", "verified", "u1", "recovery.approved", {"userId": "u1"}),
        ("denied", "deepfake_detected", "u1", "recovery.denied", {"userId": "u1", "reason": "deepfake_detected"}),
        (
            "denied",
            "account_recovery_locked",
            "u1",
            "recovery.denied",
            {"userId": "u1", "reason": "account_recovery_locked"},
        ),
        ("denied", "face_not_recognized", None, "recovery.denied", {"reason": "face_not_recognized"}),
        ("denied", "attempt_expired", None, "recovery.expired", {}),
    ],
)
def test_what_each_decision_reports(
    outcome: str, reason: str, user: str | None, event_type: str, data: dict[str, Any]
) -> None:
    assert decision_event(record(outcome, reason, user)) == (
        event_type,
        {"attemptId": "att1", "sessionId": "sess1", "decisionId": 7, **data},
    )


def test_lock_and_redemption_events() -> None:
    assert lock_event("att1", "sess1", "u1", AT) == (
        "recovery.locked",
        {"attemptId": "att1", "sessionId": "sess1", "userId": "u1", "lockedUntil": "2026-11-30T09:00:00.000000Z"},
    )
    assert redeemed_event("att1", "sess1", "u1") == (
        "reset_token.redeemed",
        {"attemptId": "att1", "sessionId": "sess1", "userId": "u1"},
    )


def test_the_body_is_type_timestamp_and_data() -> None:
    assert json.loads(body("recovery.approved", AT, {"attemptId": "a"})) == {
        "type": "recovery.approved",
        "timestamp": "2026-11-30T09:00:00.000000Z",
        "data": {"attemptId": "a"},
    }


def test_retries_back_off_exponentially_up_to_an_hour_over_a_day() -> None:
    delays = [retry_delay(n, 86400) for n in range(1, 14)]
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == 3600 and delays[-1] == 3600
    assert sum(retry_delay(n, 86400) for n in range(1, 40)) > 86400  # the schedule spans the whole day


def test_a_short_window_scales_the_schedule_down() -> None:
    assert retry_delay(1, 64) == 1 and retry_delay(10, 64) == 8
    assert 0.8 * 5 <= retry_delay(1, 86400, jitter=0.8) < 5


def test_the_signature_is_the_specifications_hmac_over_id_timestamp_and_body() -> None:
    raw = body("recovery.approved", AT, {"attemptId": "a"})
    headers = EventSender(SECRET).headers("msg_1", raw, AT)
    signed = f"msg_1.{int(AT.timestamp())}.{raw}".encode()
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(AT.timestamp()))
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_the_specifications_library_verifies_what_we_send() -> None:
    now = datetime.now(UTC)
    raw = body("recovery.denied", now, {"attemptId": "a", "reason": "liveness_failed"})
    payload = Webhook(SECRET).verify(raw, EventSender(SECRET).headers("msg_2", raw, now))
    assert payload["data"]["reason"] == "liveness_failed"
