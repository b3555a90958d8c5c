"""`/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.queue.broker import BrokerNotReady
from config import Settings
from domain.rules import Decision
from receiver.app import create_app
from receiver.services import Services
from tests.conftest import app_database_url
from tests.fakes import append_decision
from tests.fakes import make_services as services_for


class FakeEvents:
    broker = None

    def __init__(self, ping_error: Exception | None = None) -> None:
        self.ping_error = ping_error

    def enqueue(self, session_id: str, event_id: str | None) -> str:
        return "msg-1"

    def ping(self) -> None:
        if self.ping_error is not None:
            raise self.ping_error


class UnusedFaceSign:
    def create_session(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("not called by health endpoints")


def make_services(tmp_path: Path, events: FakeEvents | None = None) -> Services:
    settings = Settings(database_url=app_database_url(tmp_path), webhook_secrets=("s1", "s2"), webhook_max_bytes=1024)
    return services_for(settings, facesign=UnusedFaceSign(), events=events or FakeEvents())


def client_for(services: Services) -> TestClient:
    # From loopback, as Prometheus on the same host: /metrics answers nobody else without a token.
    return TestClient(create_app(services), raise_server_exceptions=False, client=("127.0.0.1", 50000))


def test_healthz_is_200(tmp_path: Path) -> None:
    response = client_for(make_services(tmp_path)).get("/healthz")
    assert response.status_code == 200


def test_readyz_is_200_when_database_and_broker_answer(tmp_path: Path) -> None:
    response = client_for(make_services(tmp_path)).get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


@pytest.mark.parametrize("error", [ConnectionError("refused"), TimeoutError(), RuntimeError("boom")])
def test_readyz_names_the_broker_when_its_ping_fails(tmp_path: Path, error: Exception) -> None:
    client = client_for(make_services(tmp_path, FakeEvents(ping_error=error)))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert client.get("/healthz").status_code == 200


def test_readyz_names_the_database_when_it_cannot_be_reached(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    client = client_for(services)
    services.deps.db.dispose()
    services.deps.db = Database.connect(f"sqlite:///{tmp_path}")  # a directory: sqlite cannot open it
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert client.get("/healthz").status_code == 200


def test_readyz_names_both_when_both_fail(tmp_path: Path) -> None:
    services = make_services(tmp_path, FakeEvents(ping_error=ConnectionError()))
    client = client_for(services)
    services.deps.db.dispose()
    services.deps.db = Database.connect(f"sqlite:///{tmp_path}")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert sorted(response.json()["failed"]) == ["broker", "database"]


def test_readyz_answers_within_its_deadline_whatever_hangs(tmp_path: Path) -> None:
    """A broker (or database) that never answers is reported as such in about a second and a half."""
    release = threading.Event()

    class HungEvents(FakeEvents):
        def ping(self) -> None:
            release.wait(30)

    client = client_for(make_services(tmp_path, HungEvents()))
    try:
        started = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - started < 3
        assert (response.status_code, response.json()["failed"]) == (503, ["broker"])
        assert client.get("/healthz").status_code == 200
    finally:
        release.set()


def test_readyz_is_not_ready_when_the_broker_has_no_headroom(tmp_path: Path) -> None:
    client = client_for(make_services(tmp_path, FakeEvents(ping_error=BrokerNotReady("Redis uses 95% of maxmemory"))))
    response = client.get("/readyz")
    assert (response.status_code, response.json()["failed"]) == (503, ["broker"])


def test_readyz_recovers_once_the_broker_answers_again(tmp_path: Path) -> None:
    events = FakeEvents(ping_error=ConnectionError())
    client = client_for(make_services(tmp_path, events))
    assert client.get("/readyz").status_code == 503
    events.ping_error = None
    assert client.get("/readyz").status_code == 200


def test_app_built_while_the_database_is_down_still_reports_it(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}", webhook_secrets=("s1",))
    services = services_for(
        settings, db=Database.connect(settings.database_url), facesign=UnusedFaceSign(), events=FakeEvents()
    )
    client = client_for(services)
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


# /metrics


def add_decision(services: Services, n: int, outcome: str, reason: str) -> None:
    now = datetime.now(UTC)
    with services.deps.db.transaction() as session:
        create_attempt(session, f"attempt-{n:04d}-0123456789abcdef", f"sess_{n}", [], f"https://x/s/sess_{n}", now)
        append_decision(
            session,
            Decision(outcome, reason, session_status="complete"),
            attempt_id=f"attempt-{n:04d}-0123456789abcdef",
            session_id=f"sess_{n}",
            client_reference_id=f"attempt-{n:04d}-0123456789abcdef",
            decided_at=now,
            event_id=f"evt_{n}",
            message_id=f"msg_{n}",
            digest_key=b"k" * 32,
        )


def decision_counts(text: str) -> dict[tuple[str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "facesign_decisions_total":
                counts[(sample.labels["outcome"], sample.labels["reason"])] = sample.value
    return counts


def test_metrics_count_decisions_from_the_audit_log(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    client = client_for(services)
    rows = [
        ("approved", "verified"),
        ("denied", "deepfake_detected"),
        ("denied", "deepfake_detected"),
        ("denied", "no_face"),
        ("approved", "verified"),
        ("approved", "verified"),
    ]
    for n, (outcome, reason) in enumerate(rows):
        add_decision(services, n, outcome, reason)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert decision_counts(response.text) == {
        ("approved", "verified"): 3,
        ("denied", "deepfake_detected"): 2,
        ("denied", "no_face"): 1,
    }
    assert 'facesign_decisions_total{outcome="approved",reason="verified"} 3.0' in response.text


def test_metrics_follow_new_decisions(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    client = client_for(services)
    assert decision_counts(client.get("/metrics").text) == {}
    add_decision(services, 1, "denied", "liveness_failed")
    assert decision_counts(client.get("/metrics").text) == {("denied", "liveness_failed"): 1}


def test_metrics_expose_the_webhook_counter_family(tmp_path: Path) -> None:
    text = client_for(make_services(tmp_path)).get("/metrics").text
    assert "# TYPE facesign_webhooks_received_total counter" in text
    assert "# TYPE facesign_decisions_total counter" in text
