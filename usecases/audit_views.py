"""What the auditors' dashboard shows: a window's aggregates, and one decision explained.

Both record the access before reading, as every read of the audit log does. Neither walks the whole
chain: the dashboard checks only the rows after the latest checkpoint, and shows the latest full
verification as it was recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from adapters.db import audit_detail, audit_log, audit_stats, auditors, checkpoints
from adapters.db.audit_log import Filters
from adapters.db.audit_stats import UserCount
from adapters.db.checkpoints import Checkpoint
from adapters.db.engine import Database, Session
from domain.audit_chain import GENESIS, chain_hash
from domain.audit_summary import percentile
from domain.explain import NO_PATH, Path, session_path
from domain.rules import APPROVED, Rule, rules_in_order
from domain.times import as_utc
from usecases.audit import record_access
from usecases.audit_verification import ChainStatus, chain_status

TOP_USERS = 10
T = TypeVar("T")


@dataclass(frozen=True)
class Durations:
    """Seconds (to the nearest one) from an attempt's start to its decision, over the window's decisions."""

    count: int
    p50: int | None
    p95: int | None


@dataclass(frozen=True)
class Panel:
    """What the dashboard shows for a set of filters."""

    counts: Counter[tuple[date, str, str]]
    latest: list[dict[str, Any]]
    chain: ChainStatus
    users: list[UserCount]
    durations: Durations


def _aggregate(db: Database, query: Callable[[Session], T]) -> T:
    with db.reading() as session:
        audit_stats.prefer_fast_aggregates(session)
        return query(session)


def dashboard_panel(db: Database, who: str, filters: Filters, latest_rows: int) -> Panel:
    """The aggregates run side by side, each in a read-only transaction of its own, so that PostgreSQL
    answers them on as many cores as it has (each sees the log as of its own start; rows appended in
    between may be counted by one and not another)."""
    record_access(db, who, "dashboard", filters.as_dict())
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard") as pool:
        counts = pool.submit(_aggregate, db, lambda s: audit_stats.daily_counts(s, filters))
        users = pool.submit(_aggregate, db, lambda s: audit_stats.top_users(s, filters, TOP_USERS))
        histogram = pool.submit(_aggregate, db, lambda s: audit_stats.duration_histogram(s, filters))
        chain = pool.submit(chain_status, db)
        with db.reading() as session:
            latest = [audit_log.to_record(row) for row in audit_stats.latest(session, filters, latest_rows)]
        seconds = histogram.result()
        durations = Durations(sum(seconds.values()), percentile(seconds, 0.5), percentile(seconds, 0.95))
        return Panel(counts.result(), latest, chain.result(), users.result(), durations)


@dataclass(frozen=True)
class Access:
    at: datetime
    auditor: str
    action: str


@dataclass(frozen=True)
class ChainPlace:
    """The row's links: to the row before it, its own content, and the row after it."""

    previous_hash: str | None  # the hash stored on the row before (GENESIS before row 1; None if it is gone)
    links_back: bool  # prevHash is the previous row's hash
    content_matches: bool  # the hash recomputed from the row's fields is its stored hash
    next_links: bool | None  # the next row's prevHash is this row's hash (None: this row is the head)
    covered_by: Checkpoint | None  # the latest good checkpoint that reached this row, if any

    @property
    def verifies(self) -> bool:
        return self.links_back and self.content_matches and self.next_links is not False


@dataclass(frozen=True)
class DecisionDetail:
    record: dict[str, Any]  # every field of the row, as the API names them
    flow: Sequence[Mapping[str, Any]] | None  # the flow recorded on the attempt
    path: Path
    rule: Rule | None
    rules: list[Rule]  # the whole table, in the order rows are tried
    chain: ChainPlace
    seconds_to_decision: float | None
    accesses: list[Access]

    @property
    def deciding_nodes(self) -> frozenset[str]:
        """The nodes on the path whose outcomes led to the decision: the one the deciding rule tested, or,
        for an approval (no rule matched), every node whose outcome the rules read."""
        if self.rule is None:
            return frozenset()
        reads = self.rule.reads
        return frozenset(
            s.node_id
            for s in self.path.steps
            if s.read_by_rules and (s.kind == reads or (reads is None and self.rule.outcome == APPROVED))
        )


def decision_detail(db: Database, who: str, decision_id: int) -> DecisionDetail | None:
    """One decision explained, or None when no row has that id (the access is recorded either way)."""
    record_access(db, who, "decision", {"id": decision_id}, decision_id)
    with db.reading() as session:
        record = audit_log.record_of(session, decision_id)
        if record is None:
            return None
        attempt = audit_detail.attempt_context(session, record["attemptId"])
        previous, following = audit_detail.neighbour_links(session, decision_id)
        checkpoint = checkpoints.latest(session, good=True)
        accesses = [Access(as_utc(a.at), a.auditor, a.action) for a in auditors.accesses_of(session, decision_id)]
    previous = GENESIS if decision_id == 1 else previous
    flow = attempt.flow if attempt and isinstance(attempt.flow, list) and attempt.flow else None
    rules = rules_in_order()
    place = ChainPlace(
        previous,
        previous is not None and record["prevHash"] == previous,
        chain_hash(record["prevHash"], record) == record["hash"],
        None if following is None else following == record["hash"],
        checkpoint if checkpoint and checkpoint.head_id >= decision_id else None,
    )
    decided = datetime.fromisoformat(record["decidedAt"].replace("Z", "+00:00"))
    return DecisionDetail(
        record=record,
        flow=flow,
        path=session_path(flow, record["recognition"], record["liveness"], record["conversation"]) if flow else NO_PATH,
        rule=next((rule for rule in rules if rule.reason == record["reason"]), None),
        rules=rules,
        chain=place,
        seconds_to_decision=(decided - attempt.started_at).total_seconds() if attempt else None,
        accesses=accesses,
    )
