"""Signed events for the customer's application: verified by the Standard Webhooks library in a
receiving server, delivered at least once through Dramatiq's worker, retried, dead-lettered, replayed."""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from click.testing import CliRunner
from dramatiq.brokers.stub import StubBroker
from prometheus_client.parser import text_string_to_metric_families

from adapters.db.attempts import create_attempt
from adapters.queue.broker import build_broker
from cli import main
from domain.flow import build_recovery_flow
from receiver.metrics import Metrics
from tests.app_receiver import AppReceiver, body_of
from tests.conftest import free_port
from tests.fakes import FakeFaceSign, make_deps, seed_attempt
from usecases import app_events, decide
from usecases.deps import Deps
from usecases.recoveries import redeem_reset_token
from workers import actors, context

SECRET = "whsec_" + base64.b64encode(b"application-events-secret-32-byt").decode()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[StubBroker]:
    original = actors.ACTORS[0].broker
    broker = build_broker(None)
    actors.bind(broker)
    running = dramatiq.Worker(broker, worker_timeout=20, worker_threads=2)
    running.start()
    yield broker  # type: ignore[misc]
    running.stop()
    context.install(None)
    actors.bind(original)


def events_deps(tmp_path: Path, urls: tuple[str, ...], window: float = 86400.0) -> tuple[Deps, FakeFaceSign]:
    deps, fake = make_deps(
        f"sqlite:///{tmp_path}/db.sqlite",
        str(tmp_path / "mail"),
        app_webhook_urls=urls,
        app_webhook_secret=SECRET,
        app_webhook_retry_window=window,
    )
    context.install(deps)
    return deps, fake


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def decide_through_the_worker(session_ids: list[str]) -> None:
    for session_id in session_ids:
        actors.process_session_event.send(session_id)


def test_every_event_type_arrives_signed_and_carries_ids_never_emails(worker: StubBroker, tmp_path: Path) -> None:
    receiver = AppReceiver(SECRET, free_port()).start()
    try:
        deps, fake = events_deps(tmp_path, (receiver.url,))
        sessions = [seed_attempt(deps, fake, "ok1")]
        sessions.append(seed_attempt(deps, fake, "fake1", email="bob@example.com", liveness="deepfakeDetected"))
        seed_attempt(deps, fake, "carol0", email="carol@example.com", liveness="deepfakeDetected")
        sessions.append("sess_carol0")
        for n in (1, 2):
            sessions.append(
                seed_attempt(
                    deps, fake, f"carol{n}", email="carol@example.com", user=False, liveness="deepfakeDetected"
                )
            )
        decide_through_the_worker(sessions)
        expired = expire_one(deps)
        for delivery_id in expired.deliveries:
            actors.deliver_app_event.send(delivery_id)
        assert wait_for(lambda: len(receiver.accepted_ids()) == 7)
        redeemed = redeem_reset_token(deps, reset_token(tmp_path), datetime.now(UTC), enqueue=enqueue)
        assert redeemed == "u_ok1"
        assert wait_for(lambda: len(receiver.accepted_ids()) == 8)
    finally:
        receiver.stop()
    assert receiver.unverified == 0
    assert receiver.types() == sorted(
        ["recovery.approved", "recovery.denied", "recovery.denied", "recovery.denied", "recovery.denied"]
        + ["recovery.expired", "recovery.locked", "reset_token.redeemed"]
    )
    assert len(set(receiver.accepted_ids())) == 8
    for item in receiver.accepted:
        assert "@" not in item.body  # ids only, never an email
        assert set(item.payload) == {"type", "timestamp", "data"}
        assert {"attemptId", "sessionId"} <= set(item.payload["data"])
    by_type = {item.payload["type"]: item.payload["data"] for item in receiver.accepted}
    assert by_type["recovery.approved"]["userId"] == "u_ok1"
    assert by_type["reset_token.redeemed"] == {"attemptId": "ok1", "sessionId": "sess_ok1", "userId": "u_ok1"}
    assert by_type["recovery.locked"]["userId"] == "u_carol0" and by_type["recovery.locked"]["lockedUntil"]
    denied = [i.payload["data"] for i in receiver.accepted if i.payload["type"] == "recovery.denied"]
    assert Counter(d["reason"] for d in denied) == {"deepfake_detected": 4}
    assert "userId" not in by_type["recovery.expired"]


def expire_one(deps: Deps) -> decide.Result:
    created = datetime.now(UTC) - timedelta(hours=2)
    with deps.db.transaction() as session:
        create_attempt(session, "late1", "sess_late1", build_recovery_flow(), "https://x", created)
    return decide.record(deps, "sess_late1", None, event_id=None, message_id=None)


def reset_token(tmp_path: Path) -> str:
    for path in (tmp_path / "mail").glob("*.eml"):
        found = re.search(r"token=([A-Za-z0-9_-]+)", path.read_text())
        if found:
            return found.group(1)
    raise AssertionError("no reset email")


def enqueue(delivery_ids: Any) -> None:
    for delivery_id in delivery_ids:
        actors.deliver_app_event.send(delivery_id)


def test_a_receiver_failing_for_a_while_gets_each_event_once_with_the_same_id_and_body(
    worker: StubBroker, tmp_path: Path
) -> None:
    # 1.5 s of 500s; a 20 s window retries after about 0.3 s, 0.6 s, 1.2 s, then every 2.5 s at most.
    receiver = AppReceiver(SECRET, free_port(), fail_until=time.monotonic() + 1.5).start()
    try:
        deps, fake = events_deps(tmp_path, (receiver.url,), window=20)
        decide_through_the_worker([seed_attempt(deps, fake, f"a{n}", email=f"u{n}@example.com") for n in range(3)])
        assert wait_for(lambda: len(receiver.accepted_ids()) == 3)
        time.sleep(0.5)  # nothing more arrives once delivered
    finally:
        receiver.stop()
    assert sorted(Counter(receiver.accepted_ids()).values()) == [1, 1, 1]
    assert receiver.refused, "the receiver never failed: the test proves nothing"
    bodies = {item.event_id: item.body for item in receiver.accepted}
    for attempt in receiver.refused:  # every retry carried the stable id and the very same bytes
        assert bodies[attempt.event_id] == attempt.body
    assert {body_of(item)["type"] for item in receiver.accepted} == {"recovery.approved"}


def test_events_reach_every_configured_url(worker: StubBroker, tmp_path: Path) -> None:
    first, second = AppReceiver(SECRET, free_port()).start(), AppReceiver(SECRET, free_port()).start()
    try:
        deps, fake = events_deps(tmp_path, (first.url, second.url))
        decide_through_the_worker([seed_attempt(deps, fake, "both")])
        assert wait_for(lambda: len(first.accepted_ids()) == len(second.accepted_ids()) == 1)
    finally:
        first.stop()
        second.stop()
    assert first.accepted_ids() == second.accepted_ids()


def cli(tmp_path: Path, url: str, *args: str) -> Any:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "APP_WEBHOOK_URL": url,
        "APP_WEBHOOK_SECRET": SECRET,
        "REDIS_URL": "",
    }
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def gauge(deps: Deps, name: str, **labels: str) -> float:
    text = Metrics(None, partial(app_events.stats, deps)).render().decode()
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    raise AssertionError(f"{name}{labels} not exposed")


def test_a_receiver_down_past_the_window_leaves_dead_letters_that_replay_delivers(
    worker: StubBroker, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens there yet
    receiver = AppReceiver(SECRET, port)
    deps, fake = events_deps(tmp_path, (receiver.url,), window=1.5)
    decide_through_the_worker([seed_attempt(deps, fake, f"d{n}", email=f"d{n}@example.com") for n in range(2)])
    assert wait_for(lambda: gauge(deps, "facesign_app_event_deliveries", state="failed") == 2)
    assert gauge(deps, "facesign_app_event_oldest_undelivered_seconds") > 0
    listed = cli(tmp_path, receiver.url, "events", "list", "--failed", "--format", "jsonl")
    failed_ids = re.findall(r'"eventId":"(msg_[0-9a-f]+)"', listed.output)
    assert listed.exit_code == 0 and len(failed_ids) == 2
    assert '"status":"failed"' in listed.output and f"127.0.0.1:{port}" in listed.output
    receiver.start()
    try:
        one = cli(tmp_path, receiver.url, "events", "replay", failed_ids[0])
        assert one.exit_code == 0 and one.output.strip() == "replayed 1 deliveries"
        rest = cli(tmp_path, receiver.url, "events", "replay", "--failed")
        assert rest.exit_code == 0 and rest.output.strip() == "replayed 1 deliveries"
    finally:
        receiver.stop()
    assert sorted(receiver.accepted_ids()) == sorted(failed_ids)
    assert gauge(deps, "facesign_app_event_deliveries", state="delivered") == 2
    assert gauge(deps, "facesign_app_event_oldest_undelivered_seconds") == 0
    unknown = CliRunner().invoke(
        main,
        ["events", "replay", "msg_nope"],
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "APP_WEBHOOK_URL": receiver.url,
            "APP_WEBHOOK_SECRET": SECRET,
        },
    )
    assert unknown.exit_code == 1 and "no event msg_nope" in unknown.output


def test_a_delivery_message_that_comes_early_comes_back_when_due(tmp_path: Path) -> None:
    """Broker delays are whole milliseconds and hosts' clocks differ: a retry's message may arrive just
    before the delivery is due. It is neither sent nor dropped; it says when to come back."""
    from adapters.db import app_events as outbox

    receiver = AppReceiver(SECRET, free_port())
    deps, _ = events_deps(tmp_path, (receiver.url,))
    due = datetime.now(UTC)
    with deps.db.transaction() as session:
        _, [delivery] = outbox.add_event(session, "recovery.denied", "{}", due, (receiver.url,))
    assert app_events.deliver(deps, delivery, now=due - timedelta(milliseconds=2)) == pytest.approx(0.002)
    assert gauge(deps, "facesign_app_event_deliveries", state="pending") == 1
    assert receiver.accepted_ids() == []


def test_the_reconciler_delivers_what_a_lost_message_or_a_dead_worker_left(tmp_path: Path) -> None:
    from adapters.db import app_events as outbox
    from usecases.reconcile import reconcile_once

    receiver = AppReceiver(SECRET, free_port()).start()
    try:
        deps, fake = make_deps(
            f"sqlite:///{tmp_path}/db.sqlite",
            str(tmp_path / "mail"),
            app_webhook_urls=(receiver.url,),
            app_webhook_secret=SECRET,
        )
        lost = decide.process_session_event(deps, seed_attempt(deps, fake, "lost"))  # its message never sent
        held = decide.process_session_event(deps, seed_attempt(deps, fake, "held", email="h@example.com"))
        now = datetime.now(UTC)
        with deps.db.transaction() as session:  # a worker claims it and is killed before it posts
            assert outbox.claim(session, held.deliveries[0], now, now + app_events.LEASE) is not None
        reconcile_once(deps, now=now + timedelta(seconds=5))
        assert receiver.accepted_ids() == []  # nothing is taken back within the grace and the lease
        tally = reconcile_once(deps, now=now + app_events.LEASE + timedelta(seconds=61))
    finally:
        receiver.stop()
    assert tally["events_resumed"] == 2
    sent = {item.payload["data"]["attemptId"] for item in receiver.accepted}
    assert sent == {"lost", "held"} and len(receiver.accepted) == 2
    assert len(lost.deliveries) == 1
