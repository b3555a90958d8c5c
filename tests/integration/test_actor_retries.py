"""Dramatiq's retries take over when the FaceSign client gives up, and end in the dead-letter queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from adapters.db.models import RecoveryAttempt
from adapters.facesign.client import BudgetExhausted, FaceSignTransient
from adapters.queue.broker import build_broker
from adapters.queue.names import SESSIONS_QUEUE
from tests.fakes import make_deps, seed_attempt
from usecases.deps import Deps
from workers import actors, context


@pytest.fixture
def stub_broker() -> Iterator[StubBroker]:
    original = actors.ACTORS[0].broker
    broker = build_broker(None)
    actors.bind(broker)
    yield broker  # type: ignore[misc]
    actors.bind(original)


def test_actor_retry_options_are_bounded() -> None:
    options = actors.process_session_event.options
    assert options["max_retries"] == 8 and options["max_backoff"] <= 120_000
    assert actors.send_reset_email.options["max_retries"] == 8


def test_vendor_outage_exhausts_retries_into_the_dead_letter_queue(stub_broker: StubBroker, tmp_path: Path) -> None:
    deps, fake = make_deps(f"sqlite:///{tmp_path}/db.sqlite", str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    calls: list[str] = []

    def down(sid: str, **_: object) -> dict[str, object]:
        calls.append(sid)
        raise FaceSignTransient("HTTP 503")

    fake.get_session = down  # type: ignore[method-assign]
    context.install(deps)
    worker = dramatiq.Worker(stub_broker, worker_timeout=50)
    worker.start()
    try:
        actors.process_session_event.send_with_options(
            args=(session_id,), kwargs={"event_id": "evt"}, max_retries=2, min_backoff=10, max_backoff=20
        )
        stub_broker.join(SESSIONS_QUEUE, fail_fast=False, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
        context.install(None)
    assert len(calls) == 3  # the first try and two retries
    dead = stub_broker.dead_letters_by_queue[SESSIONS_QUEUE]
    assert [m.args for m in dead] == [(session_id,)]


def test_waiting_for_budget_is_never_a_retry_and_never_dead_letters(stub_broker: StubBroker, tmp_path: Path) -> None:
    """More budget waits than the message has retries: it is delivered again each time, then decided."""
    deps, fake = make_deps(f"sqlite:///{tmp_path}/db.sqlite", str(tmp_path / "mail"))
    session_id = seed_attempt(deps, fake)
    answer = fake.get_session
    waits: list[str] = []

    def budgeted(sid: str, **options: object) -> dict[str, object]:
        if len(waits) < 12:
            waits.append(sid)
            raise BudgetExhausted("no FaceSign budget", 0.01)
        return answer(sid, **options)  # type: ignore[arg-type]

    fake.get_session = budgeted  # type: ignore[method-assign]
    context.install(deps)
    worker = dramatiq.Worker(stub_broker, worker_timeout=20)
    worker.start()
    try:
        actors.process_session_event.send_with_options(
            args=(session_id,), kwargs={"event_id": "evt"}, max_retries=2, min_backoff=10, max_backoff=20
        )
        deadline = time.monotonic() + 20
        while attempt_status(deps) == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        context.install(None)
    assert len(waits) == 12
    assert attempt_status(deps) == "approved"
    assert not stub_broker.dead_letters_by_queue[SESSIONS_QUEUE]


def attempt_status(deps: Deps) -> str:
    with deps.db.reading() as db:
        return str(db.scalar(select(RecoveryAttempt.status)))
