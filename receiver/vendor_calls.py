"""Vendor calls a person waits on (`POST /recoveries`): a capacity of their own and a time budget.

Each call runs on a thread of its own limiter, never on the threads that serve health probes, status
polls and metrics; at most `slots` run at once per process, and a caller who cannot get a slot, or
whose call cannot finish, within `budget` seconds is told to come back (503 with Retry-After). So a
slow or hung FaceSign costs its own callers a bounded wait and nobody else anything.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Busy(Exception):
    """No slot came free within the budget."""


class VendorCalls:
    def __init__(self, slots: int, budget: float) -> None:
        self.budget = budget
        self._slots = anyio.Semaphore(slots)
        self._threads = anyio.CapacityLimiter(slots)

    async def run(self, function: Callable[..., T]) -> T:
        """`function(budget=seconds_left)` on a vendor thread, once a slot is free; Busy if none frees in time."""
        started = anyio.current_time()
        acquired = False
        with anyio.move_on_after(self.budget):
            await self._slots.acquire()
            acquired = True  # no await in between: a slot taken is always known
        if not acquired:
            raise Busy
        try:
            left = max(1.0, self.budget - (anyio.current_time() - started))
            return await anyio.to_thread.run_sync(partial(function, budget=left), limiter=self._threads)
        finally:
            self._slots.release()
