"""Defending the account owner inside a decision's transaction: the recovery lock and their alerts.

Every decision holds the audit chain's lock (taken in `decide.record` before this is used), so
the refusals counted here cannot change under it: concurrent attempts on several workers are
decided one after the other, each seeing the refusals committed before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.db import locks, outbox
from adapters.db.engine import Session
from adapters.db.users import Recipient
from domain import lock as lock_rules
from domain.notices import ALERT_REASONS, LOCK_NOTICE, Notice, alert_for
from domain.rules import Decision


@dataclass(frozen=True)
class Aftermath:
    mail_id: str | None = None  # the alert queued for the owner, if any
    locked_until: datetime | None = None  # set when this refusal locked the owner's recoveries


class AccountGuard:
    def __init__(self, session: Session, policy: lock_rules.LockPolicy, alert_interval: int, now: datetime) -> None:
        self.session = session
        self.policy = policy
        self.alert_interval = alert_interval
        self.now = now
        self._denials: dict[str, list[datetime]] = {}

    def denials(self, user_id: str) -> list[datetime]:
        """The user's refusals that count toward the lock, before this decision."""
        if user_id not in self._denials:
            since = self.policy.lookback(self.now)
            self._denials[user_id] = locks.denial_times(self.session, user_id, since)
        return self._denials[user_id]

    def is_locked(self, user_id: str) -> bool:
        """For the rules: are this user's recoveries locked right now?"""
        return lock_rules.locked(self.denials(user_id), self.now, self.policy)

    def after(self, decision: Decision, attempt_id: str, user: Recipient | None) -> Aftermath:
        """Before the decision's audit row goes in: does it lock the user, and what does the owner hear?"""
        if user is None or decision.approved or decision.reason not in ALERT_REASONS:
            return Aftermath()
        before = self.denials(user.id)
        until = lock_rules.lifted_at(before, self.policy)
        locked_before = until is not None and self.now < until
        lock_set = False
        if lock_rules.counts_toward_lock(decision.outcome, decision.reason, user.id):
            until = lock_rules.lifted_at([*before, self.now], self.policy)
            lock_set = not locked_before and until is not None and self.now < until
        in_force = until if until is not None and self.now < until else None
        notice = self._notice(decision.reason, user.id, in_force, lock_set)
        mail_id = outbox.queue_alert(self.session, attempt_id, user, self.now, notice) if notice else None
        return Aftermath(mail_id, in_force if lock_set else None)

    def _notice(self, reason: str, user_id: str, locked_until: datetime | None, lock_set: bool) -> Notice | None:
        last = outbox.last_alert_at(self.session, user_id)
        refused = locks.refusals_since(self.session, user_id, ALERT_REASONS, last) + 1  # this one is not in yet
        notice = alert_for(
            reason,
            now=self.now,
            interval=self.alert_interval,
            last_alert_at=last,
            refused=refused,
            locked_until=locked_until,
            lock_set_now=lock_set,
        )
        if notice is not None and notice.kind == LOCK_NOTICE:
            # The owner is told how many refusals locked them, not how many since their last alert.
            window_start = self.now - self.policy.span
            recent = sum(1 for at in self.denials(user_id) if at > window_start) + 1
            notice = Notice(LOCK_NOTICE, recent, locked_until)
        return notice
