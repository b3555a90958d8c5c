"""Signed `session.status` webhooks, delivered from background threads and retried until a 2xx.

Retries wait in a timer heap instead of sleeping inside a worker, so one failing receiver
does not hold back the deliveries of other events.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from domain.signature import HEADER, sign

log = logging.getLogger(__name__)

TIMEOUT = (3.0, 10.0)  # connect, read: seconds
EVENT_TYPE = "session.status"

Recorder = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 12

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Exponential, capped, with jitter so that retries from many events do not arrive in lock step."""
        ceiling = min(self.cap, self.base * 2.0 ** (failed_attempts - 1))
        return ceiling * (0.5 + rng.random() / 2)


@dataclass
class _Job:
    session_id: str
    event_id: str
    body: bytes
    attempt: int = 1


def event_body(session_id: str, event_id: str, created_at_ms: int) -> bytes:
    event = {"id": event_id, "type": EVENT_TYPE, "createdAt": created_at_ms, "sessionId": session_id}
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


class Deliverer:
    """Posts events to one URL. Threads start with the first event; `close()` stops them and drops what is left."""

    def __init__(
        self,
        url: str,
        secret: str,
        record: Recorder,
        *,
        backoff: Backoff | None = None,
        workers: int = 2,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.url = url
        self._secret = secret
        self._record = record
        self._backoff = backoff or Backoff()
        self._workers = workers
        self._timeout = timeout
        self._rng = random.Random()  # noqa: S311 - jitter only
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def publish(self, session_id: str, copies: int = 1) -> str:
        """Queue one event for this session, sent `copies` times under the same event id; returns the id."""
        event_id = new_event_id()
        body = event_body(session_id, event_id, int(time.time() * 1000))
        with self._cond:
            if self._closed:
                log.debug("deliverer closed, not sending %s", event_id)
                return event_id
            if not self._threads:
                self._start()
            for _ in range(copies):
                self._push(_Job(session_id, event_id, body), time.monotonic())
        return event_id

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            # A request in flight may run to its own timeout; the threads are daemons, so do not wait for it.
            thread.join(max(0.0, deadline - time.monotonic()))

    def _start(self) -> None:
        for index in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"sandbox-webhook-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _push(self, job: _Job, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), job))
        self._cond.notify()

    def _next(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)[2]
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        with requests.Session() as http:
            while (job := self._next()) is not None:
                try:
                    self._attempt(http, job)
                except Exception:  # a bug here must not kill the worker and silently stop all deliveries
                    log.exception("webhook delivery of %s failed unexpectedly", job.event_id)

    def _attempt(self, http: requests.Session, job: _Job) -> None:
        # A fresh timestamp on every attempt: a retry hours later must still pass the receiver's tolerance.
        headers = {HEADER: sign(self._secret, int(time.time()), job.body), "Content-Type": "application/json"}
        status: int | None = None
        error: str | None = None
        try:
            response = http.post(self.url, data=job.body, headers=headers, timeout=self._timeout, allow_redirects=False)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            job.session_id,
            {
                "eventId": job.event_id,
                "attempt": job.attempt,
                "status": status,
                "error": error,
                "at": int(time.time() * 1000),
            },
        )
        if error is None:
            return
        if job.attempt >= self._backoff.max_attempts:
            log.warning("giving up on webhook %s after %d attempts: %s", job.event_id, job.attempt, error)
            return
        delay = self._backoff.delay(job.attempt, self._rng)
        with self._cond:
            if not self._closed:
                self._push(_Job(job.session_id, job.event_id, job.body, job.attempt + 1), time.monotonic() + delay)
