"""The FaceSign API client: pooled connections, timeouts, bounded retries with jitter, and a token
from the shared budget (adapters/facesign/budget.py) before every HTTP request, retries included.

What is retried: a GET on any transient failure (reading a session twice is harmless). A POST
(creating a session) only on failures that prove FaceSign did not act on it: the connection could
not be opened (refused, unresolvable, connect timeout: nothing was sent), or FaceSign answered 503
(it refused the request as a whole). A read timeout, a reset connection, a 500/502/504 or an
unreadable answer may follow a session FaceSign did create: retrying would create a second one, so
the error goes to the caller (a 503 for the person, who may start again). A 429 is never retried
here: it pauses every caller of the budget (BudgetExhausted), and one caller's retry would spend
the budget everyone now waits for.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from prometheus_client import Counter, Histogram
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from adapters.facesign.budget import Budget, Caller, budget_for

log = logging.getLogger(__name__)


class FaceSignError(Exception):
    """Any failure talking to FaceSign."""


class FaceSignTransient(FaceSignError):
    """Worth trying again later: connection trouble, timeouts, 429, 5xx.

    `unprocessed`: FaceSign certainly did not act on the request (see the module's retry rule)."""

    def __init__(self, message: str, retry_after: float | None = None, *, unprocessed: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unprocessed = unprocessed


class FaceSignRejected(FaceSignError):
    """A 4xx other than 429: repeating the same request cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FaceSignNotFound(FaceSignRejected):
    pass


class BudgetExhausted(FaceSignError):
    """Nothing was sent: the shared budget has no token for this caller for `retry_after` seconds,
    or FaceSign answered 429 and every caller waits that long. Waiting is not failing."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    total_seconds: float = 20.0
    backoff_max: float = 4.0
    backoff_multiplier: float = 0.25
    retry_after_cap: float = 10.0


@dataclass(frozen=True)
class VendorMetrics:
    latency: Histogram
    errors: Counter


@functools.cache
def vendor_metrics() -> VendorMetrics:
    """Built on first use and registered nowhere: the receiver adds them to its registry, and worker
    processes expose them through Dramatiq's Prometheus middleware (multiprocess files)."""
    return VendorMetrics(
        latency=Histogram(
            "facesign_api_request_duration_seconds",
            "FaceSign API call latency, one observation per HTTP try",
            ["operation"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=None,
        ),
        errors=Counter(
            "facesign_api_errors", "FaceSign API failures by HTTP status or error kind", ["status"], registry=None
        ),
    )


# Answers by which FaceSign refuses a request as a whole, without acting on it.
REFUSED_UNPROCESSED = frozenset({503})  # 429 pauses every caller instead: BudgetExhausted


def _never_sent(error: requests.RequestException) -> bool:
    """The connection was never opened, so FaceSign cannot have seen the request."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if not isinstance(error, requests.ConnectionError) or isinstance(error, requests.Timeout):
        return False
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # requests wraps urllib3's MaxRetryError around the cause
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


class FaceSignClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        connect_timeout: float = 3.05,
        policy: RetryPolicy | None = None,
        pool_size: int = 32,
        budget: Budget | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, timeout)
        self.policy = policy or RetryPolicy()
        self.budget = budget or budget_for(900, 0.3, None)  # FACESIGN_RATE_LIMIT's defaults, this process alone
        self._http = requests.Session()
        # One pool per host, as many connections as threads may call at once; retries are ours (tenacity).
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        self._http.headers.update({"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        self._jitter = wait_random_exponential(multiplier=self.policy.backoff_multiplier, max=self.policy.backoff_max)

    def create_session(
        self,
        client_reference_id: str,
        metadata: Mapping[str, Any],
        flow: list[dict[str, Any]],
        *,
        budget: float | None = None,
    ) -> dict[str, Any]:
        """`budget`: seconds the whole call may take, retries included (a person is waiting)."""
        body = {
            "clientReferenceId": client_reference_id,
            "metadata": dict(metadata),
            "flow": flow,
            "videoAIAnalysisEnabled": True,
        }
        return self._call("POST", "/sessions", Caller.INTERACTIVE, budget=budget, json=body)

    def get_session(
        self, session_id: str, *, caller: Caller = Caller.WORKER, before_send: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """`before_send` runs once a token is in hand, right before each HTTP request (the coalescing
        marker is cleared there: a webhook arriving after it causes another fetch)."""
        return self._call("GET", f"/sessions/{quote(session_id, safe='')}", caller, before_send=before_send)

    def close(self) -> None:
        self._http.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, FaceSignTransient) and error.retry_after is not None:
            return min(error.retry_after, self.policy.retry_after_cap)
        return float(self._jitter(state))

    def _call(
        self, method: str, path: str, caller: Caller, budget: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        total = self.policy.total_seconds if budget is None else min(self.policy.total_seconds, budget)
        if budget is not None:
            kwargs["timeout"] = (min(self.timeout[0], budget), min(self.timeout[1], budget))

        def worth_retrying(error: BaseException) -> bool:
            return isinstance(error, FaceSignTransient) and (method == "GET" or error.unprocessed)

        retrying = Retrying(
            # stop_before_delay: a long Retry-After must not carry us past the total-time bound.
            stop=stop_after_attempt(self.policy.attempts) | stop_before_delay(total),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            reraise=True,
            before_sleep=lambda s: log.warning(
                "FaceSign %s %s failed (%s); retry %d",
                method,
                path,
                s.outcome.exception() if s.outcome else "",
                s.attempt_number,
            ),
        )
        return retrying(self._once, method, path, caller, **kwargs)

    def _token(self, method: str, path: str, caller: Caller, before_send: Callable[[], None] | None) -> None:
        wait = self.budget.take(caller)
        if wait is not None:
            raise BudgetExhausted(f"no FaceSign budget for {caller} {method} {path} for {wait:.2f} s", wait)
        if before_send is not None:
            before_send()

    def _once(
        self, method: str, path: str, caller: Caller, before_send: Callable[[], None] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        self._token(method, path, caller, before_send)
        metrics = vendor_metrics()
        operation = "create_session" if method == "POST" else "get_session"
        started = time.perf_counter()
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self._http.request(method, self.base_url + path, allow_redirects=False, **kwargs)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            metrics.latency.labels(operation).observe(time.perf_counter() - started)
            metrics.errors.labels("timeout" if isinstance(exc, requests.Timeout) else "connection").inc()
            raise FaceSignTransient(f"{type(exc).__name__} on {method} {path}", unprocessed=_never_sent(exc)) from exc
        metrics.latency.labels(operation).observe(time.perf_counter() - started)
        status = response.status_code
        if status >= 300:
            metrics.errors.labels(str(status)).inc()
        if status == 429:
            # Not retried here: one caller's retry would spend the budget everyone now waits for.
            pause = self.budget.rate_limited(_retry_after(response.headers.get("Retry-After")))
            raise BudgetExhausted(f"HTTP 429 on {method} {path}: every caller waits {pause:.2f} s", pause)
        if status >= 500:
            raise FaceSignTransient(
                f"HTTP {status} on {method} {path}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
                unprocessed=status in REFUSED_UNPROCESSED,
            )
        if status == 404:
            raise FaceSignNotFound(f"HTTP 404 on {method} {path}", status)
        if status >= 300:
            # Redirects are not followed: the bearer key goes to the configured host only, and an
            # API that moved is a configuration error that no retry can fix.
            raise FaceSignRejected(f"HTTP {status} on {method} {path}", status)
        try:
            payload = response.json()
        except ValueError as exc:
            raise FaceSignTransient(f"non-JSON answer on {method} {path}") from exc
        if not isinstance(payload, dict):
            raise FaceSignTransient(f"unexpected answer on {method} {path}")
        return payload
