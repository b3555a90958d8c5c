"""What the vendor API of the sandbox received: its rate limit, and the counts `GET /sandbox/stats` reports.

Like the vendor, the sandbox answers 429 once `rateLimitPerMinute` requests were served in the last
60 seconds (a refused request does not count against the limit). It records every request it
received, refused or not, so that a test can check the largest number in any 60-second window
against the limit its callers were meant to respect, and how many requests each session cost.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

WINDOW = 60.0  # seconds


class Traffic:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._received: deque[float] = deque()  # every arrival of the last WINDOW
        self._served: deque[float] = deque()  # arrivals not refused by the limit, last WINDOW
        self._per_session: dict[str, dict[str, int]] = {}
        self.requests = 0
        self.rate_limited = 0
        self.largest_window = 0

    def arrive(self, limit: int | None) -> float | None:
        """Record one vendor API request; None when it may be served, else the seconds until it could."""
        with self._lock:
            now = self._clock()
            self.requests += 1
            self._received.append(now)
            for times in (self._received, self._served):
                while times and times[0] <= now - WINDOW:
                    times.popleft()
            self.largest_window = max(self.largest_window, len(self._received))
            if limit is not None and len(self._served) >= limit:
                self.rate_limited += 1
                return self._served[-limit] + WINDOW - now
            self._served.append(now)
            return None

    def count(self, session_id: str, kind: str) -> None:
        """One request about a session the sandbox knows (`create` or `get`)."""
        with self._lock:
            counts = self._per_session.setdefault(session_id, {"create": 0, "get": 0})
            counts[kind] += 1

    def stats(self, limit: int | None) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "rateLimited": self.rate_limited,
                "maxRequestsIn60s": self.largest_window,
                "rateLimitPerMinute": limit,
                "sessions": {session_id: dict(counts) for session_id, counts in self._per_session.items()},
            }


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least one, as the vendor's Retry-After."""
    return str(max(1, math.ceil(seconds)))
