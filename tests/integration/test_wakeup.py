"""Idle Redis consumers wake when a message arrives (adapters/queue/wakeup.py): an idle worker picks up
a message within milliseconds, drains a backlog without pauses, and costs few Redis commands idling."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis

from adapters.queue.broker import SessionEvents, build_broker
from adapters.queue.names import MAIL_QUEUE, SESSIONS_QUEUE
from tests.conftest import free_port, unavailable

IDLE_TIMEOUT_MS = 1000  # Dramatiq's default worker timeout, which `facesign-recovery worker` keeps


class Recorder:
    def __init__(self) -> None:
        self.ran: dict[str, float] = {}
        self.event = threading.Event()

    def __call__(self, session_id: str, event_id: str | None = None) -> None:
        self.ran[session_id] = time.monotonic()
        self.event.set()


@pytest.fixture
def broker(redis_url: str, redis_namespace: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(redis_url, namespace=redis_namespace)
    yield broker
    broker.close()


def running_worker(broker: dramatiq.Broker, recorder: Recorder) -> dramatiq.Worker:
    dramatiq.Actor(
        recorder, broker=broker, actor_name="process_session_event", queue_name=SESSIONS_QUEUE, priority=0, options={}
    )
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=IDLE_TIMEOUT_MS)
    worker.start()
    return worker


def test_an_idle_worker_picks_up_a_webhook_message_within_milliseconds(broker: dramatiq.Broker, redis_url: str) -> None:
    recorder = Recorder()
    worker = running_worker(broker, recorder)
    events = SessionEvents(broker, redis_url)
    delays = []
    try:
        time.sleep(1.5)  # long enough for a polling consumer to have backed off to its slowest
        for index in range(8):
            recorder.event.clear()
            sent = time.monotonic()
            asyncio.run(_enqueue(events, f"sess_{index}"))
            assert recorder.event.wait(5), "the message was not picked up"
            delays.append(recorder.ran[f"sess_{index}"] - sent)
            time.sleep(0.3 + 0.1 * index)  # idle again, for varying spells
    finally:
        worker.stop()
    # Polling with Dramatiq's backoff took a median of about a third of the timeout (351 ms measured).
    assert statistics.median(delays) < 0.1, delays
    assert max(delays) < 0.5, delays


async def _enqueue(events: SessionEvents, session_id: str) -> None:
    try:
        assert await events.enqueue_async(session_id, None) is not None
    finally:
        assert events.group_commit is not None
        await events.group_commit.aclose()


def test_a_message_the_broker_enqueues_itself_also_wakes_its_consumer(broker: dramatiq.Broker) -> None:
    recorder = Recorder()
    dramatiq.Actor(
        recorder, broker=broker, actor_name="send_reset_email", queue_name=MAIL_QUEUE, priority=0, options={}
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=IDLE_TIMEOUT_MS)
    worker.start()
    try:
        time.sleep(1.5)
        sent = time.monotonic()
        broker.enqueue(dramatiq.Message(MAIL_QUEUE, "send_reset_email", ("mail_1",), {}, {}))
        assert recorder.event.wait(5)
    finally:
        worker.stop()
    assert recorder.ran["mail_1"] - sent < 0.3


def test_a_backlog_queued_without_wake_ups_is_drained_without_pauses(broker: dramatiq.Broker) -> None:
    """More messages than the consumer may hold at once, none announced: each finished message lets the
    consumer fetch the next at once, not after an idle timeout."""
    recorder = Recorder()
    dramatiq.Actor(
        recorder, broker=broker, actor_name="process_session_event", queue_name=SESSIONS_QUEUE, priority=0, options={}
    )
    count = 60
    for index in range(count):  # a plain RedisBroker enqueue: stored, but no wake-up token pushed
        message = dramatiq.Message(SESSIONS_QUEUE, "process_session_event", (f"s{index}",), {}, {})
        broker.client.hset(
            f"{broker.namespace}:{SESSIONS_QUEUE}.msgs",
            f"r{index}",
            message.copy(options={"redis_message_id": f"r{index}"}).encode(),
        )
        broker.client.rpush(f"{broker.namespace}:{SESSIONS_QUEUE}", f"r{index}")
    started = time.monotonic()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=IDLE_TIMEOUT_MS)  # holds 2 at a time
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(recorder.ran) < count and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert len(recorder.ran) == count
    assert max(recorder.ran.values()) - started < 5  # 30 idle timeouts would be 30 s


def test_an_idle_worker_sends_a_few_commands_a_second(tmp_path: Path) -> None:
    """On a Redis of its own, so that nobody else's commands are counted."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        broker = build_broker(url)
        for actor_name, queue in (("process_session_event", SESSIONS_QUEUE), ("send_reset_email", MAIL_QUEUE)):
            dramatiq.Actor(Recorder(), broker=broker, actor_name=actor_name, queue_name=queue, priority=0, options={})
        worker = dramatiq.Worker(broker, worker_threads=8, worker_timeout=IDLE_TIMEOUT_MS)
        worker.start()
        try:
            time.sleep(2)
            client.config_resetstat()
            time.sleep(5)
            calls = {name: stats["calls"] for name, stats in client.info("commandstats").items()}
        finally:
            worker.stop()
            broker.close()
        # Four consumers (two queues and their delay queues), each a fetch (one script call, which runs a
        # heartbeat and a pop inside) and a BLPOP per second: 6 round trips a second measured, 24 commands
        # counted with those the scripts run; and the stranded-message sweep, up to two ZRANGEBYSCORE a
        # second (adapters/queue/stranded.py).
        round_trips = (calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_blpop", 0)) / 5
        commands = (sum(calls.values()) - 1) / 5  # less the CONFIG RESETSTAT
        assert round_trips <= 12, calls
        assert commands <= 27, calls
    finally:
        server.kill()
        server.wait(timeout=10)
