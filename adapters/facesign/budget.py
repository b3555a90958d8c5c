"""FaceSign's request budget: one moving window shared by every process that calls the vendor.

FaceSign answers 429 above about 1,000 requests a minute per API key, whoever sends them. So
every request of the fleet (receivers creating sessions, workers fetching them, the reconciler)
takes a token from one window of FACESIGN_RATE_LIMIT requests per 60 s: in Redis when the fleet
shares one (the `limits` package's moving window: exact timestamps, no burst at a bucket edge),
in process otherwise.

The callers share that one window under nested ceilings, so that the person in front of the page
comes first: starting a recovery may fill the whole window; worker fetches stop at the part the
interactive share leaves them; the reconciler, which only repairs what the others missed, stops at
half of that. A 429 from FaceSign pauses every caller until its Retry-After has passed.

`take()` never waits: it answers how long to wait, and each caller chooses what waiting means
(a 503 for a person, a delayed message for a worker, a later pass for the reconciler).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import redis
from limits.storage import MovingWindowSupport
from prometheus_client import Counter

from adapters import ratelimit

log = logging.getLogger(__name__)

WINDOW = 60  # seconds: FACESIGN_RATE_LIMIT counts requests per minute
DEFAULT_KEY = "facesign-budget"
RECHECK_MAX = 10.0  # seconds: a wait is re-checked at least this often (the window may free up sooner)
MIN_WAIT = 0.05
MAX_PAUSE = 60.0  # a Retry-After longer than the window is not believed beyond it
DEFAULT_PAUSE = 1.0  # a 429 without a usable Retry-After
STORE_DOWN_WAIT = 1.0  # no token can be counted: wait as if the window were full


class Caller(StrEnum):
    INTERACTIVE = "interactive"  # POST /recoveries: a person is waiting
    WORKER = "worker"  # fetching a session after its webhook
    RECONCILER = "reconciler"  # re-checking what the others missed


def ceilings(per_minute: int, interactive_share: float) -> dict[Caller, int]:
    """How full the shared window may be for each caller to still take a token."""
    worker = max(1, math.floor(round(per_minute * (1 - interactive_share), 6)))  # 100 x 0.7 is 69.999...
    return {Caller.INTERACTIVE: per_minute, Caller.WORKER: worker, Caller.RECONCILER: max(1, worker // 2)}


@dataclass(frozen=True)
class BudgetMetrics:
    tokens: Counter
    waits: Counter
    wait_seconds: Counter
    rate_limited: Counter


@functools.cache
def budget_metrics() -> BudgetMetrics:
    """Registered nowhere, as `client.vendor_metrics`: the receiver adds them to its registry, worker
    processes expose them through Dramatiq's Prometheus middleware."""
    return BudgetMetrics(
        tokens=Counter(
            "facesign_budget_tokens", "FaceSign requests allowed by the shared budget", ["caller"], registry=None
        ),
        waits=Counter(
            "facesign_budget_waits", "Times a caller was told to wait for the shared budget", ["caller"], registry=None
        ),
        wait_seconds=Counter(
            "facesign_budget_wait_seconds",
            "Seconds callers were told to wait for the shared budget",
            ["caller"],
            registry=None,
        ),
        rate_limited=Counter("facesign_api_rate_limited", "429 answers received from FaceSign", registry=None),
    )


class PauseStore(Protocol):
    def pause_until(self, when: float) -> None: ...

    def until(self) -> float: ...


class InProcessPause:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def pause_until(self, when: float) -> None:
        with self._lock:
            self._until = max(self._until, when)

    def until(self) -> float:
        with self._lock:
            return self._until


class RedisPause:
    """The pause every process sees: one key holding the time it ends, gone once it has."""

    def __init__(self, redis_url: str, key: str) -> None:
        self.key = key
        self._client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def pause_until(self, when: float) -> None:
        milliseconds = int((when - time.time()) * 1000)
        if milliseconds > 0:
            self._client.set(self.key, repr(when), px=milliseconds)

    def until(self) -> float:
        value = self._client.get(self.key)
        return float(value) if value else 0.0


class Budget:
    def __init__(
        self,
        per_minute: int,
        interactive_share: float,
        storage: MovingWindowSupport,
        pause: PauseStore,
        key: str = DEFAULT_KEY,
    ) -> None:
        self.per_minute = per_minute
        self.ceilings = ceilings(per_minute, interactive_share)
        self.key = key
        self._storage = storage
        self._pause = pause

    def take(self, caller: Caller) -> float | None:
        """Take one token for a request: None when taken, else the seconds to wait (nothing taken)."""
        metrics = budget_metrics()
        try:
            wait = self._wait(caller)
        except redis.RedisError as exc:
            # No process sends a request the budget did not count: an unreachable store means wait.
            log.warning("FaceSign budget store unavailable (%s): waiting", type(exc).__name__)
            wait = STORE_DOWN_WAIT
        if wait is None:
            metrics.tokens.labels(caller.value).inc()
            return None
        metrics.waits.labels(caller.value).inc()
        metrics.wait_seconds.labels(caller.value).inc(wait)
        return wait

    def rate_limited(self, retry_after: float | None) -> float:
        """FaceSign answered 429: every caller of the budget waits this long (returned) from now."""
        pause = min(MAX_PAUSE, retry_after if retry_after is not None and retry_after > 0 else DEFAULT_PAUSE)
        budget_metrics().rate_limited.inc()
        try:
            self._pause.pause_until(time.time() + pause)
        except redis.RedisError as exc:
            log.warning("FaceSign budget store unavailable (%s): the 429 pauses this caller only", type(exc).__name__)
        return pause

    def _wait(self, caller: Caller) -> float | None:
        paused = self._pause.until() - time.time()
        if paused > 0:
            return paused
        ceiling = self.ceilings[caller]
        if self._storage.acquire_entry(self.key, ceiling, WINDOW):
            return None
        oldest, count = self._storage.get_moving_window(self.key, ceiling, WINDOW)
        # When the ceiling-th newest entry leaves the window (the in-process store answers the
        # oldest entry of all, so its wait may be longer: RECHECK_MAX bounds it either way).
        frees_at = oldest + WINDOW if count >= ceiling else time.time()
        return min(RECHECK_MAX, max(MIN_WAIT, frees_at - time.time()))


def budget_for(per_minute: int, interactive_share: float, redis_url: str | None, key: str = DEFAULT_KEY) -> Budget:
    """In Redis when the fleet shares one, else for this process alone."""
    storage = ratelimit.storage(redis_url)
    assert isinstance(storage, MovingWindowSupport)  # noqa: S101 - both of ratelimit's stores are
    pause: PauseStore = InProcessPause()
    if redis_url is not None:
        pause = RedisPause(redis_url, f"{ratelimit.KEY_PREFIX}:{key}:paused")
    return Budget(per_minute, interactive_share, storage, pause, key)
