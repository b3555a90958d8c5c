"""When the reconciler asks FaceSign about a pending attempt again: backoff, and a look before the deadline.

Every attempt is looked at in order of when it falls due, so a crowd of abandoned attempts (each
asked about less and less often) cannot keep newer ones from being looked at. Without a webhook, the
only evidence of when a session finished is when we saw it finished, so the schedule always keeps one
look shortly before the deadline (`lead` ahead of it) and one just after it (which records the expiry
of a session that never finished).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Backoff:
    base: timedelta  # the wait after the first look; it doubles with every look after that
    cap: timedelta  # and never exceeds this
    lead: timedelta  # the look before the deadline happens this long before it


def next_check(now: datetime, checks: int, deadline: datetime, backoff: Backoff) -> datetime:
    """When to look again after the `checks`-th look (1 for the first) at `now` decided nothing."""
    exponent = min(max(checks - 1, 0), 32)  # 2**32 times any base is past every cap
    wait = min(backoff.base * (1 << exponent), backoff.cap)
    due = now + max(wait, timedelta(seconds=1))
    before_deadline = deadline - backoff.lead
    if now < before_deadline:
        return min(due, before_deadline)
    if now <= deadline:
        return min(due, deadline + timedelta(seconds=1))
    return due
