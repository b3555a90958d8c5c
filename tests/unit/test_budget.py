"""FaceSign's shared request budget in process: nested ceilings per caller, waits, the 429 pause, metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from adapters.facesign.budget import RECHECK_MAX, Caller, budget_for, budget_metrics, ceilings


@pytest.mark.parametrize(
    ("per_minute", "share", "expected"),
    [
        (900, 0.3, (900, 630, 315)),
        (100, 0.3, (100, 70, 35)),
        (10, 0, (10, 10, 5)),
        (1, 0.3, (1, 1, 1)),  # every caller may still send something
    ],
)
def test_ceilings_leave_people_their_share_and_the_reconciler_the_leftover(
    per_minute: int, share: float, expected: tuple[int, int, int]
) -> None:
    limits = ceilings(per_minute, share)
    assert (limits[Caller.INTERACTIVE], limits[Caller.WORKER], limits[Caller.RECONCILER]) == expected


def test_workers_wait_once_their_share_is_spent_while_people_still_get_tokens() -> None:
    budget = budget_for(10, 0.3, None)
    assert [budget.take(Caller.WORKER) for _ in range(7)] == [None] * 7
    wait = budget.take(Caller.WORKER)
    assert wait is not None and 0 < wait <= RECHECK_MAX
    assert budget.take(Caller.RECONCILER) is not None
    assert [budget.take(Caller.INTERACTIVE) for _ in range(3)] == [None] * 3
    assert budget.take(Caller.INTERACTIVE) is not None


def test_a_429_pauses_everyone_until_its_retry_after() -> None:
    budget = budget_for(100, 0.3, None)
    assert 4.9 < budget.rate_limited(5) <= 5
    for caller in Caller:
        wait = budget.take(caller)
        assert wait is not None and 4 < wait <= 5


def test_tokens_and_waits_are_counted_by_caller() -> None:
    registry = CollectorRegistry()
    metrics = budget_metrics()
    for metric in (metrics.tokens, metrics.waits, metrics.wait_seconds, metrics.rate_limited):
        registry.register(metric)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    before = (
        value("facesign_budget_tokens_total", caller="worker"),
        value("facesign_budget_waits_total", caller="worker"),
    )
    budget = budget_for(2, 0.5, None)
    budget.take(Caller.WORKER)
    budget.take(Caller.WORKER)
    assert value("facesign_budget_tokens_total", caller="worker") - before[0] == 1
    assert value("facesign_budget_waits_total", caller="worker") - before[1] == 1
    assert value("facesign_budget_wait_seconds_total", caller="worker") > 0
    limited = value("facesign_api_rate_limited_total")
    budget.rate_limited(1)
    assert value("facesign_api_rate_limited_total") - limited == 1


def test_without_its_store_the_budget_answers_wait_rather_than_let_a_request_through() -> None:
    budget = budget_for(900, 0.3, "redis://127.0.0.1:1/0")
    wait = budget.take(Caller.INTERACTIVE)
    assert wait is not None and wait > 0
