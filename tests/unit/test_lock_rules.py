"""The recovery lock's arithmetic and the owner's alerts, table-driven (pure: no clock, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.lock import LockPolicy, counts_toward_lock, lifted_at, locked
from domain.notices import ATTEMPT_ALERT, LOCK_NOTICE, Notice, alert_for

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = LockPolicy(threshold=3, window=86400)


def hours(*values: float) -> list[datetime]:
    return [T0 + timedelta(hours=value) for value in values]


@pytest.mark.parametrize(
    ("denials", "expected_end"),
    [
        pytest.param([], None, id="none"),
        pytest.param(hours(0, 1), None, id="two-are-below-the-threshold"),
        pytest.param(hours(0, 1, 2), T0 + timedelta(hours=2) + DAY, id="three-within-a-day-lock-a-day-after-the-last"),
        pytest.param(hours(0, 12, 24), T0 + timedelta(hours=24) + DAY, id="exactly-one-window-apart-still-counts"),
        pytest.param(hours(0, 12, 24.01), None, id="spread-over-more-than-a-window"),
        pytest.param(hours(0, 1, 2, 20), T0 + timedelta(hours=20) + DAY, id="a-refusal-while-locked-extends-it"),
        pytest.param(hours(0, 1, 2, 25.5), T0 + timedelta(hours=2) + DAY, id="a-later-lone-refusal-never-shortens"),
        pytest.param(hours(2, 0, 1), T0 + timedelta(hours=2) + DAY, id="order-does-not-matter"),
    ],
)
def test_lock_end(denials: list[datetime], expected_end: datetime | None) -> None:
    assert lifted_at(denials, POLICY) == expected_end


def test_locked_until_the_window_has_passed_since_the_last_refusal() -> None:
    denials = hours(0, 1, 2)
    end = T0 + timedelta(hours=2) + DAY
    assert locked(denials, end - timedelta(seconds=1), POLICY)
    assert not locked(denials, end, POLICY)
    assert not locked(hours(0, 1), T0 + timedelta(hours=1), POLICY)


def test_threshold_and_window_are_the_policy() -> None:
    assert lifted_at(hours(0), LockPolicy(threshold=1, window=60)) == T0 + timedelta(seconds=60)
    assert lifted_at(hours(0, 0.5), LockPolicy(threshold=2, window=60)) is None


@given(st.lists(st.integers(min_value=0, max_value=10 * 86400), max_size=12))
def test_a_new_refusal_never_ends_a_lock_sooner(offsets: list[int]) -> None:
    denials = [T0 + timedelta(seconds=offset) for offset in offsets]
    latest = max(denials, default=T0)
    before = lifted_at(denials, POLICY)
    after = lifted_at([*denials, latest + timedelta(seconds=1)], POLICY)
    if before is not None:
        assert after is not None and after >= before


@pytest.mark.parametrize(
    ("outcome", "reason", "user", "counted"),
    [
        ("denied", "deepfake_detected", "u1", True),
        ("denied", "liveness_failed", "u1", True),
        ("denied", "identity_not_confirmed", "u1", True),
        ("denied", "deepfake_detected", None, False),
        ("denied", "account_recovery_locked", "u1", False),
        ("denied", "face_not_recognized", "u1", False),
        ("denied", "attempt_expired", "u1", False),
        ("approved", "verified", "u1", False),
    ],
)
def test_which_refusals_count(outcome: str, reason: str, user: str | None, counted: bool) -> None:
    assert counts_toward_lock(outcome, reason, user) is counted


def alert(reason: str = "deepfake_detected", last: datetime | None = None, lock_set: bool = False) -> Notice | None:
    return alert_for(
        reason,
        now=T0,
        interval=3600,
        last_alert_at=last,
        refused=1,
        locked_until=T0 + DAY if lock_set else None,
        lock_set_now=lock_set,
    )


@pytest.mark.parametrize(
    ("reason", "last", "lock_set", "kind"),
    [
        pytest.param("deepfake_detected", None, False, ATTEMPT_ALERT, id="first-refusal-alerts"),
        pytest.param("liveness_failed", T0 - timedelta(minutes=59), False, None, id="within-the-hour-counted-later"),
        pytest.param("identity_not_confirmed", T0 - timedelta(hours=1), False, ATTEMPT_ALERT, id="an-hour-later"),
        pytest.param("account_recovery_locked", None, False, ATTEMPT_ALERT, id="refused-while-locked"),
        pytest.param("deepfake_detected", T0 - timedelta(minutes=1), True, LOCK_NOTICE, id="the-lock-is-always-told"),
        pytest.param("face_not_recognized", None, False, None, id="not-aimed-at-the-owner"),
        pytest.param("session_not_complete", None, False, None, id="abandoned-is-no-attack"),
    ],
)
def test_which_refusals_alert_the_owner(reason: str, last: datetime | None, lock_set: bool, kind: str | None) -> None:
    notice = alert(reason, last, lock_set)
    assert (notice.kind if notice else None) == kind
