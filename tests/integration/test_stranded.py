"""The stranded-message sweep against real Redis and a stock Dramatiq worker.

A fetch whose reply never reached the worker (the client timed out during a Redis stall, while the
server ran the script once the stall ended) leaves message ids in the live worker's acknowledgement
set. `broker.do_fetch` run outside the worker's consumer does exactly that: the ids move into this
broker's set and the bodies go nowhere. These tests hold the sweep, and the key layout it reads,
to the installed Dramatiq.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis

from adapters.queue.gauges import QueueCollector
from adapters.queue.stranded import StrandedSweeper, TrackingRedisBroker
from tests.chaos.harness import RedisServer
from tests.conftest import free_port, unavailable

QUEUE = "sessions"


@pytest.fixture
def broker(redis_url: str, redis_namespace: str) -> Iterator[TrackingRedisBroker]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    tracking = TrackingRedisBroker(client=client, namespace=redis_namespace, fetch_timeout=0.5)
    tracking.add_middleware(StrandedSweeper(interval=0.2))
    yield tracking
    tracking.close()


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(condition())  # type: ignore[operator]


def counting_actor(broker: dramatiq.Broker) -> tuple[dramatiq.Actor[Any, Any], Counter[str]]:
    """An actor on QUEUE that counts how often each argument was processed."""
    processed: Counter[str] = Counter()
    lock = threading.Lock()

    def record(key: str) -> None:
        with lock:
            processed[key] += 1

    return dramatiq.Actor(
        record, broker=broker, actor_name="record", queue_name=QUEUE, priority=0, options={}
    ), processed


def test_messages_stranded_in_a_live_workers_acks_are_processed(broker: TrackingRedisBroker) -> None:
    actor, processed = counting_actor(broker)
    for number in range(5):
        actor.send(f"m{number}")
    stranded = broker.do_fetch(QUEUE, 3)  # what a timed-out fetch leaves behind
    assert len(stranded) == 3 and broker.client.scard(broker.acks_key(QUEUE)) == 3

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        assert wait_for(lambda: sum(processed.values()) == 5, timeout=10), processed
        assert wait_for(lambda: broker.client.scard(broker.acks_key(QUEUE)) == 0, timeout=5)
    finally:
        worker.stop()
    assert processed == {f"m{n}": 1 for n in range(5)}
    assert broker.client.hlen(f"{broker.namespace}:{QUEUE}.msgs") == 0


def test_messages_the_worker_holds_are_left_alone(broker: TrackingRedisBroker) -> None:
    """A message being processed for longer than the grace is held, not stranded: it runs once."""
    processed: Counter[str] = Counter()

    def slow(key: str) -> None:
        time.sleep(1.5)
        processed[key] += 1

    actor = dramatiq.Actor(slow, broker=broker, actor_name="slow", queue_name=QUEUE, priority=0, options={})
    for number in range(4):
        actor.send(f"m{number}")
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    try:
        assert wait_for(lambda: sum(processed.values()) == 4, timeout=15)
        time.sleep(1.0)  # a wrong requeue would run one again by now
    finally:
        worker.stop()
    assert processed == {f"m{n}": 1 for n in range(4)}


def test_the_delayed_gauge_counts_retries_a_worker_holds_until_their_time(broker: TrackingRedisBroker) -> None:
    """Dramatiq's delay-queue consumer takes every delayed message off the list at once and keeps it in
    memory until its eta: the list reads 0 while the retries really wait."""
    calls: Counter[str] = Counter()

    def failing(key: str) -> None:
        calls[key] += 1
        raise RuntimeError("FaceSign is down")

    options = {"max_retries": 3, "min_backoff": 60_000, "max_backoff": 60_000}
    actor = dramatiq.Actor(failing, broker=broker, actor_name="failing", queue_name=QUEUE, priority=0, options=options)
    for number in range(7):
        actor.send(f"m{number}")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        assert wait_for(lambda: len(calls) == 7, timeout=10)
        assert wait_for(lambda: broker.client.llen(f"{broker.namespace}:{QUEUE}.DQ") == 0, timeout=5)
        depth = {tuple(s.labels.values()): s.value for f in QueueCollector(broker).collect() for s in f.samples}
        assert depth[(QUEUE, "delayed")] == 7
        assert depth[(QUEUE, "ready")] == 0
    finally:
        worker.stop()


def test_delayed_messages_survive_a_full_redis(tmp_path: Path) -> None:
    """Redis refuses writes (maxmemory, noeviction) while a worker holds delayed messages in memory: the
    delay-queue consumer fails, and Dramatiq's clean-up hands them back with a write that fails too. The
    consumer must come back and the messages run once Redis takes writes again, not sit in the
    acknowledgement set until the worker restarts."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))
    server = RedisServer(free_port(), tmp_path)
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    tracking = TrackingRedisBroker(client=client, namespace="full", fetch_timeout=0.5)
    tracking.add_middleware(StrandedSweeper(interval=0.2))
    actor, processed = counting_actor(tracking)
    worker = dramatiq.Worker(tracking, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        for number in range(5):
            actor.send_with_options(args=(f"m{number}",), delay=1500)
        delayed = tracking.acks_key(f"{QUEUE}.DQ")
        assert wait_for(lambda: client.scard(delayed) == 5, timeout=5), "the worker did not take the delayed messages"
        server.full_for(2.5)  # their time comes while every write is refused
        assert wait_for(lambda: len(processed) == 5, timeout=20), processed
        assert wait_for(lambda: client.scard(delayed) == 0, timeout=5)
    finally:
        worker.stop()
        tracking.close()
        server.stop()
    assert set(processed) == {f"m{n}" for n in range(5)}
