"""Which email a decision sends its user: the rules of the owner's notices, pure.

The reset email goes with every approval. A refused attempt aimed at a local user (their face was
recognised) tells that user: at most one such alert per `interval`, the refusals in between counted
in the next one, except the refusal that locks their recoveries, which always says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.lock import COUNTED_REASONS, LOCKED_REASON

RESET = "reset"
ATTEMPT_ALERT = "attempt_alert"
LOCK_NOTICE = "lock_notice"
ALERT_KINDS = (ATTEMPT_ALERT, LOCK_NOTICE)
ALERT_REASONS = COUNTED_REASONS | {LOCKED_REASON}


@dataclass(frozen=True)
class Notice:
    kind: str
    refused: int = 1  # refused attempts since the user's previous alert, this one included
    locked_until: datetime | None = None


def alert_for(
    reason: str,
    *,
    now: datetime,
    interval: int,
    last_alert_at: datetime | None,
    refused: int,
    locked_until: datetime | None,
    lock_set_now: bool,
) -> Notice | None:
    """The alert a refused attempt on a known user sends, or None (not alerted, or within the interval).

    `refused`: the user's alerting refusals since `last_alert_at`, this one included; `locked_until`:
    when their lock ends, if they are locked; `lock_set_now`: this very refusal set the lock.
    """
    if reason not in ALERT_REASONS:
        return None
    if lock_set_now:
        return Notice(LOCK_NOTICE, refused, locked_until)
    if last_alert_at is not None and now - last_alert_at < timedelta(seconds=interval):
        return None
    return Notice(ATTEMPT_ALERT, refused, locked_until)
