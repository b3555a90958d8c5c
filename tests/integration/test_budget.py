"""The budget shared through Redis: every process's tokens come from one window, one 429 pauses all."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from adapters.facesign.budget import Budget, Caller, budget_for


@pytest.fixture
def key(redis_url: str, redis_namespace: str) -> Iterator[str]:
    yield f"{redis_namespace}-budget"
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(f"*{redis_namespace}-budget*"):
        client.delete(name)
    client.close()


def test_two_processes_share_one_window_exactly_under_contention(redis_url: str, key: str) -> None:
    budgets = [budget_for(50, 0.3, redis_url, key=key) for _ in range(2)]  # as two processes would
    taken: list[bool] = []
    lock = threading.Lock()

    def hammer(budget: Budget, caller: Caller) -> None:
        for _ in range(30):
            allowed = budget.take(caller) is None
            with lock:
                taken.append(allowed)

    threads = [
        threading.Thread(target=hammer, args=(budgets[i % 2], Caller.INTERACTIVE if i < 2 else Caller.WORKER))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 50  # 180 asked, the window's 50 given, whoever asked
    assert budgets[0].take(Caller.INTERACTIVE) is not None and budgets[1].take(Caller.INTERACTIVE) is not None


def test_worker_fetches_leave_the_reserve_to_people_across_processes(redis_url: str, key: str) -> None:
    worker, receiver = budget_for(10, 0.3, redis_url, key=key), budget_for(10, 0.3, redis_url, key=key)
    assert [worker.take(Caller.WORKER) for _ in range(8)].count(None) == 7
    assert [receiver.take(Caller.INTERACTIVE) for _ in range(4)].count(None) == 3


def test_a_429_seen_by_one_process_pauses_the_others(redis_url: str, key: str) -> None:
    first, second = budget_for(900, 0.3, redis_url, key=key), budget_for(900, 0.3, redis_url, key=key)
    first.rate_limited(3)
    wait = second.take(Caller.INTERACTIVE)
    assert wait is not None and 2 < wait <= 3
