"""The per-account recovery lock: repeated refused attempts on one user pause that user's recoveries.

Pure: the caller reads the denial times from the audit log (inside the decision's transaction)
and passes them in with the time it is now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Denials that mean someone presented the user's face and failed the checks that stop an impostor.
COUNTED_REASONS = frozenset({"deepfake_detected", "liveness_failed", "identity_not_confirmed"})
LOCKED_REASON = "account_recovery_locked"


@dataclass(frozen=True)
class LockPolicy:
    threshold: int = 3  # RECOVERY_LOCK_THRESHOLD
    window: int = 86400  # RECOVERY_LOCK_WINDOW, seconds

    @property
    def span(self) -> timedelta:
        return timedelta(seconds=self.window)

    def lookback(self, now: datetime) -> datetime:
        """The oldest denial that can still matter at `now`: a lock in force was set by `threshold`
        denials within one window, the newest of them less than a window ago."""
        return now - 2 * self.span


def counts_toward_lock(outcome: str, reason: str, user_id: str | None) -> bool:
    return outcome == "denied" and reason in COUNTED_REASONS and user_id is not None


def lifted_at(denials: Iterable[datetime], policy: LockPolicy) -> datetime | None:
    """When the lock these denials set ends, or None when they set none.

    Any `threshold` consecutive denials within one window lock the user until a window after the
    newest of them; later denials that again make `threshold` within a window extend it. A denial
    never shortens a lock.
    """
    times = sorted(denials, reverse=True)
    size = policy.threshold
    for newest in range(len(times) - size + 1):
        if times[newest] - times[newest + size - 1] <= policy.span:
            return times[newest] + policy.span  # groups are tried newest first: this one ends last
    return None


def locked(denials: Iterable[datetime], now: datetime, policy: LockPolicy) -> bool:
    until = lifted_at(denials, policy)
    return until is not None and now < until
