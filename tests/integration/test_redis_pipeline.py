"""The Redis broker path: the receiver's enqueue, a stock Dramatiq worker, the decision, the email."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select

from adapters.db.models import Decision, OutgoingMail
from adapters.queue.broker import SessionEvents, build_broker
from tests.fakes import make_deps, seed_attempt
from workers import actors, context


@pytest.fixture
def redis_broker(redis_url: str, redis_namespace: str) -> Iterator[dramatiq.Broker]:
    original = actors.ACTORS[0].broker
    broker = build_broker(redis_url, namespace=redis_namespace)
    actors.bind(broker)
    yield broker
    actors.bind(original)
    broker.close()


@pytest.fixture
def redis_worker(redis_broker: dramatiq.Broker) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(redis_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_webhook_event_through_redis_to_decision_and_email(
    postgres_url: str, tmp_path: Path, redis_url: str, redis_broker: dramatiq.Broker, redis_worker: dramatiq.Worker
) -> None:
    deps, fake = make_deps(postgres_url, str(tmp_path / "mail"))
    context.install(deps)
    try:
        session_id = seed_attempt(deps, fake)
        first = SessionEvents(redis_broker, redis_url).enqueue(session_id, "evt_redis")
        second = SessionEvents(redis_broker, redis_url).enqueue(session_id, "evt_redis")  # a duplicate delivery

        def emailed() -> bool:
            with deps.db.reading() as db:
                return db.scalar(select(OutgoingMail.status)) == "sent"

        wait_for(emailed)
        redis_broker.join("sessions", timeout=10_000)
        with deps.db.reading() as db:
            rows = list(db.scalars(select(Decision)))
        assert len(rows) == 1
        assert rows[0].event_id == "evt_redis" and rows[0].outcome == "approved"
        assert rows[0].message_id in {first, second}
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    finally:
        context.install(None)


def test_enqueue_fails_cleanly_when_redis_is_unreachable() -> None:
    from adapters.queue.broker import EnqueueError

    events = SessionEvents(build_broker("redis://127.0.0.1:1/0"), "redis://127.0.0.1:1/0")
    with pytest.raises(EnqueueError):
        events.enqueue("sess_x", "evt_x")
