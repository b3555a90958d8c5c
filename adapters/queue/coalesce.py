"""One fetch per burst of webhooks: while a session's fetch is queued and not yet started, its
further webhooks add no message, and a second delivery of one event id is dropped.

The receiver sets a session's "pending fetch" marker in the same step that enqueues its message
(in Redis inside the group commit's script, see adapters/queue/group_commit.py; in embedded mode
under one lock here). The worker takes the marker once it holds a budget token and right before
it sends the GET, so a webhook arriving after that always enqueues one more fetch: the marker only
ever stands for a fetch that has not started, and no status change can be missed. The marker holds
the latest signed event time of the webhooks it stands for: the queued message carries only its
own, and the expiry rule judges a session by the latest event that reported its status.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import redis
from prometheus_client import Counter, Histogram

from adapters.queue.group_commit import pending_key
from adapters.queue.names import NAMESPACE


class Admission(IntEnum):
    """What became of a webhook (the group commit's script answers these numbers)."""

    ENQUEUED = 0
    COALESCED = 1  # a fetch for its session is queued and not started: it will see this change too
    DUPLICATE = 2  # its event id was already taken within the signature tolerance


@dataclass(frozen=True)
class QueueMetrics:
    coalesced: Counter
    decision_latency: Histogram


@functools.cache
def queue_metrics() -> QueueMetrics:
    """Registered nowhere (as `client.vendor_metrics`): the receiver adds them to its registry,
    worker processes expose them through Dramatiq's Prometheus middleware."""
    return QueueMetrics(
        coalesced=Counter(
            "facesign_fetches_coalesced",
            "Webhooks that added no fetch: one was already queued for the session, or the event was a duplicate",
            ["reason"],
            registry=None,
        ),
        decision_latency=Histogram(
            "facesign_webhook_to_decision_seconds",
            "From the receipt of the webhook that queued the deciding fetch to the decision's commit",
            buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=None,
        ),
    )


REASONS = {Admission.COALESCED: "pending_fetch", Admission.DUPLICATE: "duplicate_event"}


@functools.cache
def _coalesced() -> tuple[Any, ...]:
    """The labelled children, indexed by Admission (the one for ENQUEUED is never counted)."""
    coalesced = queue_metrics().coalesced
    children: list[Any] = [None] * len(Admission)
    for admission, reason in REASONS.items():
        children[admission] = coalesced.labels(reason)
    return tuple(children)


def count(admission: int) -> None:
    """Count a webhook that added no message. `admission`: an Admission or the script's number for
    one, taken as it is: on the receiver's hot path, making an enum of it cost as much as counting."""
    if admission:
        _coalesced()[admission].inc()


class PendingFetches(Protocol):
    def take(self, session_id: str) -> int | None:
        """The session's queued fetch is starting: later webhooks must queue another. Answers the
        latest signed event time (epoch ms) the marker stood for, when there was one."""


class InProcessPending:
    """Embedded mode: the markers and recent event ids in memory, one lock around admit-and-enqueue."""

    def __init__(self, duplicate_window: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.duplicate_window = duplicate_window
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # session id -> latest signed event time (epoch ms, 0 unknown)
        self._seen: set[str] = set()
        self._expiries: deque[tuple[float, str]] = deque()

    def enqueue(
        self, session_id: str, event_id: str | None, event_at: int | None, send: Callable[[], str]
    ) -> tuple[Admission, str | None]:
        """`send()` enqueues the message; it runs only when the webhook is admitted, under the lock,
        so marker and message appear together (and neither when it raises)."""
        with self._lock:
            now = self._clock()
            while self._expiries and self._expiries[0][0] <= now:
                self._seen.discard(self._expiries.popleft()[1])
            if event_id and event_id in self._seen:
                return Admission.DUPLICATE, None
            if session_id in self._pending:
                self._pending[session_id] = max(self._pending[session_id], event_at or 0)
                self._remember(event_id, now)
                return Admission.COALESCED, None
            message_id = send()
            self._pending[session_id] = event_at or 0
            self._remember(event_id, now)
            return Admission.ENQUEUED, message_id

    def take(self, session_id: str) -> int | None:
        with self._lock:
            return self._pending.pop(session_id, None) or None

    def _remember(self, event_id: str | None, now: float) -> None:
        if event_id:
            self._seen.add(event_id)
            self._expiries.append((now + self.duplicate_window, event_id))


class RedisPending:
    """Redis mode: the workers' side of the markers the group commit sets."""

    def __init__(self, redis_url: str, namespace: str = NAMESPACE, client: redis.Redis | None = None) -> None:
        self.namespace = namespace
        self._client = client or redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3)

    def take(self, session_id: str) -> int | None:
        value = self._client.getdel(pending_key(self.namespace, session_id))
        return int(value) or None if value is not None else None
