"""One fetch per burst of webhooks, and no status change missed: the receiver's marker and the worker's
clearing of it, in Redis (here fakeredis; tests/integration/test_coalescing.py runs the same scenarios
on a real Redis) and in embedded mode.

Each scenario plays the receiver (`deliver`, as the webhook endpoint enqueues) and the worker
(`drain`, the actor's use case for every queued message, in order) around a FakeFaceSign.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import dramatiq
import fakeredis
import fakeredis.aioredis
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from adapters.queue.broker import SessionEvents, build_broker
from adapters.queue.coalesce import InProcessPending, RedisPending
from adapters.queue.group_commit import GroupCommit, queue_keys
from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE
from config import Settings
from domain.signature import HEADER, sign
from receiver.app import create_app
from tests.fakes import FakeFaceSign, make_deps, make_services, seed_attempt
from usecases import decide
from usecases.deps import Deps

URL = "redis://unused"


class Lane(Protocol):
    """The queue between receiver and worker, whatever holds it."""

    pending: Any  # the markers the worker clears (the dependencies' `pending`)

    def deliver(self, session_id: str, event_id: str | None) -> str | None: ...

    def queued(self) -> int: ...

    def take(self) -> tuple[str, str | None] | None: ...


class RedisLane:
    """The receiver's group commit and the workers' marker clearing on one Redis (fake or real)."""

    def __init__(self, sync: Any, make_async: Callable[[], Any], namespace: str) -> None:
        self.sync, self.namespace = sync, namespace
        self.events = SessionEvents(build_broker(URL, namespace=namespace), URL)
        self.events.group_commit = GroupCommit(URL, namespace, SESSIONS_QUEUE, PROCESS_ACTOR, client_factory=make_async)
        self.pending = RedisPending(URL, namespace, client=sync)
        self.messages_key, self.queue_key = queue_keys(namespace, SESSIONS_QUEUE)

    def deliver(self, session_id: str, event_id: str | None) -> str | None:
        async def once() -> str | None:
            try:
                return await self.events.enqueue_async(session_id, event_id)
            finally:
                assert self.events.group_commit is not None
                await self.events.group_commit.aclose()

        return asyncio.run(once())

    def queued(self) -> int:
        return int(self.sync.llen(self.queue_key))

    def take(self) -> tuple[str, str | None] | None:
        redis_id = self.sync.lpop(self.queue_key)
        if redis_id is None:
            return None
        message = dramatiq.Message.decode(self.sync.hget(self.messages_key, redis_id))
        self.sync.hdel(self.messages_key, redis_id)
        return message.args[0], message.kwargs["event_id"]


class EmbeddedLane:
    def __init__(self) -> None:
        self.broker = build_broker(None)
        self.pending = InProcessPending(300)
        self.events = SessionEvents(self.broker, pending=self.pending)

    def deliver(self, session_id: str, event_id: str | None) -> str | None:
        return self.events.enqueue(session_id, event_id)

    def queued(self) -> int:
        return int(self.broker.queues[SESSIONS_QUEUE].qsize())

    def take(self) -> tuple[str, str | None] | None:
        queue = self.broker.queues[SESSIONS_QUEUE]
        if queue.empty():
            return None
        message = dramatiq.Message.decode(queue.get_nowait())
        return message.args[0], message.kwargs["event_id"]


def drain(lane: Lane, deps: Deps) -> list[str]:
    """The worker: every queued message through the actor's use case, in order."""
    results = []
    while (taken := lane.take()) is not None:
        results.append(decide.process_session_event(deps, *taken).status)
    return results


def fake_redis_lane() -> RedisLane:
    server = fakeredis.FakeServer()
    return RedisLane(
        fakeredis.FakeRedis(server=server), lambda: fakeredis.aioredis.FakeRedis(server=server), "fsr-unit"
    )


@pytest.fixture(params=["redis", "embedded"])
def lane(request: pytest.FixtureRequest) -> Lane:
    return fake_redis_lane() if request.param == "redis" else EmbeddedLane()


@pytest.fixture
def deps_and_fake(tmp_path: Path, lane: Lane) -> Iterator[tuple[Deps, FakeFaceSign]]:
    deps, fake = make_deps(f"sqlite:///{tmp_path}/coalescing.db", str(tmp_path / "mail"))
    deps.pending = lane.pending
    yield deps, fake
    deps.db.dispose()


# The scenarios take the lane and the dependencies, so that the integration tests can run them on real Redis.


def burst_is_one_fetch(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    session_id = seed_attempt(deps, fake)
    delivered = [lane.deliver(session_id, f"evt_{status}") for status in ("created", "inProgress", "complete")]
    assert delivered[0] is not None and delivered[1:] == [None, None]
    assert lane.queued() == 1
    assert drain(lane, deps) == ["approved"]
    assert fake.calls == 1


def webhook_during_the_fetch_causes_one_more(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    """The race: the marker is cleared (the fetch has its token), then, while FaceSign answers with the
    status before the change, the person completes and the change's webhook arrives."""
    session_id = seed_attempt(deps, fake, attempt_id="racing", status="inProgress")
    assert lane.deliver(session_id, "evt_inProgress") is not None
    answer_before_the_change = fake.get_session

    def fetch_while_the_session_completes(sid: str, **options: Any) -> dict[str, Any]:
        answer = answer_before_the_change(sid, **options)  # clears the marker first, as the client does
        fake.complete(sid, "racing")
        assert lane.deliver(sid, "evt_complete") is not None, "the webhook after the fetch began was coalesced"
        return answer

    fake.get_session = fetch_while_the_session_completes  # type: ignore[method-assign,assignment]
    taken = lane.take()
    assert taken is not None
    assert decide.process_session_event(deps, *taken).status == "not_finished"
    fake.get_session = answer_before_the_change  # type: ignore[method-assign]
    assert drain(lane, deps) == ["approved"]


def webhook_before_the_fetch_rides_along(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    """A webhook whose change happened before the fetch began needs no fetch of its own."""
    session_id = seed_attempt(deps, fake, attempt_id="early", status="inProgress")
    assert lane.deliver(session_id, "evt_inProgress") is not None
    fake.complete(session_id, "early")
    assert lane.deliver(session_id, "evt_complete") is None
    assert drain(lane, deps) == ["approved"]
    assert fake.calls == 1


def duplicate_delivery_is_dropped(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    session_id = seed_attempt(deps, fake, attempt_id="dup", status="inProgress")
    assert lane.deliver(session_id, "evt_1") is not None
    assert lane.deliver(session_id, "evt_1") is None
    assert drain(lane, deps) == ["not_finished"]
    assert lane.deliver(session_id, "evt_1") is None  # the fetch began, yet the same event changes nothing
    assert lane.queued() == 0
    fake.complete(session_id, "dup")
    assert lane.deliver(session_id, "evt_2") is not None
    assert lane.deliver(session_id, None) is None  # no event id: coalesced like any other
    assert drain(lane, deps) == ["approved"]


def a_decided_session_lets_the_next_webhook_queue_again(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    session_id = seed_attempt(deps, fake, attempt_id="done")
    assert lane.deliver(session_id, "evt_1") is not None
    assert drain(lane, deps) == ["approved"]
    assert lane.deliver(session_id, "evt_2") is not None  # a late webhook: one message, and no fetch
    assert drain(lane, deps) == ["already_decided"]
    assert lane.deliver(session_id, "evt_3") is not None
    assert fake.calls == 1


def other_sessions_are_not_held_back(lane: Lane, deps: Deps, fake: FakeFaceSign) -> None:
    first = seed_attempt(deps, fake, attempt_id="one")
    second = seed_attempt(deps, fake, attempt_id="two", email="b@example.com")
    assert lane.deliver(first, "evt_a") is not None
    assert lane.deliver(second, "evt_b") is not None
    assert lane.deliver(first, "evt_c") is None
    assert sorted(drain(lane, deps)) == ["approved", "approved"]


SCENARIOS = [
    burst_is_one_fetch,
    webhook_during_the_fetch_causes_one_more,
    webhook_before_the_fetch_rides_along,
    duplicate_delivery_is_dropped,
    a_decided_session_lets_the_next_webhook_queue_again,
    other_sessions_are_not_held_back,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(
    scenario: Callable[[Lane, Deps, FakeFaceSign], None], lane: Lane, deps_and_fake: tuple[Deps, FakeFaceSign]
) -> None:
    scenario(lane, *deps_and_fake)


def test_many_webhooks_of_one_session_in_one_batch_make_one_message() -> None:
    lane = fake_redis_lane()

    async def burst() -> list[str | None]:
        try:
            calls = [lane.events.enqueue_async("sess_burst", f"evt_{i % 7}") for i in range(40)]
            return await asyncio.gather(*calls)
        finally:
            assert lane.events.group_commit is not None
            await lane.events.group_commit.aclose()

    assert len([message for message in asyncio.run(burst()) if message is not None]) == 1
    assert lane.queued() == 1


def test_duplicates_are_remembered_for_the_signature_tolerance_only() -> None:
    now = [1000.0]
    pending = InProcessPending(duplicate_window=300, clock=lambda: now[0])
    events = SessionEvents(build_broker(None), pending=pending)
    assert events.enqueue("sess_1", "evt_1") is not None
    pending.take("sess_1")
    now[0] += 299
    assert events.enqueue("sess_1", "evt_1") is None
    now[0] += 2
    assert events.enqueue("sess_1", "evt_1") is not None  # a redelivery hours later is a new fetch


def test_the_receiver_counts_what_it_coalesced(tmp_path: Path) -> None:
    secret = "whsec_coalesce"
    settings = Settings(database_url=f"sqlite:///{tmp_path}/app.db", webhook_secrets=(secret,))
    events = SessionEvents(build_broker(None))
    client = TestClient(create_app(make_services(settings, events=events)), client=("127.0.0.1", 50000))

    def total(reason: str) -> float:
        text = client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "facesign_fetches_coalesced_total" and sample.labels.get("reason") == reason:
                    return sample.value
        return 0.0

    before = {reason: total(reason) for reason in ("pending_fetch", "duplicate_event")}
    for event_id in ("evt_a", "evt_b", "evt_b"):
        body = json.dumps({"id": event_id, "type": "session.status", "createdAt": 1, "sessionId": "sess_m"}).encode()
        headers = {HEADER: sign(secret, int(time.time()), body), "Content-Type": "application/json"}
        assert client.post("/webhooks/facesign", content=body, headers=headers).status_code == 200
    assert total("pending_fetch") - before["pending_fetch"] == 1
    assert total("duplicate_event") - before["duplicate_event"] == 1
