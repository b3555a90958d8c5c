"""The receiver's group-commit fast path against real Redis, consumed by a stock Dramatiq worker.

This is the contract that lets the receiver write Dramatiq's Redis keys itself: if a dramatiq
upgrade changes the layout or the message format, the first test fails.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from dramatiq.middleware import CurrentMessage

from adapters.queue.broker import SessionEvents, build_broker
from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE
from config import Settings
from domain.signature import HEADER, sign
from receiver.app import create_app
from tests.dramatiq_contract import what_dramatiq_encodes
from tests.fakes import make_services

SECRET = "whsec_test"
DOWN_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_broker(redis_url: str, redis_namespace: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(redis_url, namespace=redis_namespace)
    yield broker
    broker.close()


def declare(broker: dramatiq.Broker, fn: Callable[..., None], actor_name: str, queue_name: str) -> dramatiq.Actor:
    """A stand-in for one of our actors, by its name and queue, run once per message (no retries)."""
    return dramatiq.Actor(
        fn, broker=broker, actor_name=actor_name, queue_name=queue_name, priority=0, options={"max_retries": 0}
    )


def drain(broker: dramatiq.Broker, queue_name: str) -> None:
    """A stock Dramatiq worker runs until the queue is empty."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        broker.join(queue_name, timeout=20_000)
    finally:
        worker.stop()


def enqueue_all(events: SessionEvents, pairs: list[tuple[str, str | None]]) -> list[Any]:
    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(*(events.enqueue_async(s, e) for s, e in pairs), return_exceptions=True)
        finally:
            assert events.group_commit is not None
            await events.group_commit.aclose()

    return asyncio.run(scenario())


def test_a_stock_dramatiq_worker_runs_the_actor_for_every_message_the_fast_path_wrote(
    redis_url: str, redis_broker: dramatiq.Broker
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any], str]] = []
    lock = threading.Lock()

    def process_session_event(session_id: str, event_id: str | None = None) -> None:
        message = CurrentMessage.get_current_message()
        assert message is not None
        with lock:
            calls.append(((session_id,), {"event_id": event_id}, message.message_id))

    declare(redis_broker, process_session_event, PROCESS_ACTOR, SESSIONS_QUEUE)
    events = SessionEvents(redis_broker, redis_url=redis_url)
    pairs = [(f"sess_{i}", f"evt_{i}" if i % 3 else None) for i in range(60)]
    message_ids = enqueue_all(events, pairs)
    assert not [m for m in message_ids if isinstance(m, BaseException)]

    drain(redis_broker, SESSIONS_QUEUE)
    assert sorted((c[0], c[1]) for c in calls) == sorted(((s,), {"event_id": e}) for s, e in pairs)
    assert sorted(c[2] for c in calls) == sorted(message_ids)  # enqueue_async returns Dramatiq's message id


AWKWARD_SESSIONS = ["sess_plain", 'sess_ü"\\/😀', "sess_\t\n\u2028", "sess_" + "x" * 500]


def test_on_real_redis_each_message_is_what_dramatiq_encodes(redis_url: str, redis_broker: dramatiq.Broker) -> None:
    """The script builds the messages with Redis's own cjson: the same JSON values as `Message.encode`
    for quotes, backslashes, slashes, non-ASCII and control characters."""
    events = SessionEvents(redis_broker, redis_url=redis_url)
    answers = enqueue_all(events, [(s, f"evt_{i}") for i, s in enumerate(AWKWARD_SESSIONS)])
    assert events.group_commit is not None
    client = redis.Redis.from_url(redis_url)
    try:
        queued = client.lrange(events.group_commit.queue_key, 0, -1)
        assert len(queued) == len(AWKWARD_SESSIONS)
        for redis_message_id in queued:
            data = client.hget(events.group_commit.messages_key, redis_message_id)
            assert json.loads(data) == what_dramatiq_encodes(data, redis_message_id.decode())
            message = dramatiq.Message.decode(data)
            index = AWKWARD_SESSIONS.index(message.args[0])
            assert message.kwargs == {"event_id": f"evt_{index}"}
            assert message.message_id == answers[index]
    finally:
        client.close()


def signed_post(client: httpx.AsyncClient, session_id: str) -> Any:
    body = json.dumps({"id": f"evt_{session_id}", "type": "session.status", "createdAt": 1, "sessionId": session_id})
    headers = {HEADER: sign(SECRET, int(time.time()), body.encode()), "content-type": "application/json"}
    return client.post("/webhooks/facesign", content=body, headers=headers)


def webhook_app(tmp_path: Path, events: SessionEvents) -> Any:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/unused.db", webhook_secrets=(SECRET,))
    return create_app(make_services(settings, events=events))


def post_concurrently(app: Any, session_ids: list[str], events: SessionEvents) -> list[int]:
    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
                responses = await asyncio.gather(*(signed_post(client, s) for s in session_ids))
        finally:
            if events.group_commit is not None:  # its connection belongs to this event loop
                await events.group_commit.aclose()
        return [r.status_code for r in responses]

    return asyncio.run(scenario())


def test_many_concurrent_webhooks_make_exactly_that_many_messages(
    tmp_path: Path, redis_url: str, redis_broker: dramatiq.Broker, redis_namespace: str
) -> None:
    events = SessionEvents(redis_broker, redis_url=redis_url)
    session_ids = [f"sess_{i}" for i in range(300)]
    statuses = post_concurrently(webhook_app(tmp_path, events), session_ids, events)
    assert statuses == [200] * 300
    client = redis.Redis.from_url(redis_url)
    queue = [i.decode() for i in client.lrange(f"{redis_namespace}:{SESSIONS_QUEUE}", 0, -1)]
    stored = client.hgetall(f"{redis_namespace}:{SESSIONS_QUEUE}.msgs")
    client.close()
    assert len(queue) == len(set(queue)) == 300 and set(queue) == {k.decode() for k in stored}
    assert sorted(json.loads(v)["args"][0] for v in stored.values()) == sorted(session_ids)


def test_webhooks_get_503_when_redis_is_down(tmp_path: Path) -> None:
    events = SessionEvents(build_broker(DOWN_URL), redis_url=DOWN_URL)
    assert post_concurrently(webhook_app(tmp_path, events), ["sess_a", "sess_b", "sess_c"], events) == [503] * 3


def test_batches_survive_a_script_cache_flush_and_fill_the_largest_batch(
    redis_url: str, redis_broker: dramatiq.Broker
) -> None:
    """Redis forgets loaded scripts on restart or SCRIPT FLUSH: the next batch loads it again. A full batch
    (max_batch messages, twice as many script arguments) must fit Lua's unpack too."""
    events = SessionEvents(redis_broker, redis_url)
    assert events.group_commit is not None
    client = redis.Redis.from_url(redis_url)
    first = enqueue_all(events, [("s0", None)])
    client.script_flush()
    many = [(f"s{i}", f"evt_{i}") for i in range(1, 2 * events.group_commit.max_batch + 1)]
    rest = enqueue_all(events, many)
    assert not [r for r in first + rest if isinstance(r, BaseException)]
    namespace = redis_broker.namespace
    queued = [i.decode() for i in client.lrange(f"{namespace}:{SESSIONS_QUEUE}", 0, -1)]
    assert len(queued) == len(set(queued)) == 1 + len(many)
    stored = client.hgetall(f"{namespace}:{SESSIONS_QUEUE}.msgs")
    assert {key.decode() for key in stored} == set(queued)
    assert [json.loads(stored[i.encode()])["args"][0] for i in queued] == [f"s{i}" for i in range(len(queued))]
