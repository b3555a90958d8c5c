"""Queue depth and dead-letter gauges, and the FaceSign client's metrics, on the receiver's /metrics."""

from __future__ import annotations

import threading
import time

import responses
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.facesign.client import FaceSignClient, FaceSignTransient, RetryPolicy, vendor_metrics
from adapters.queue.broker import build_broker, session_event_message
from adapters.queue.gauges import QueueCollector
from receiver.metrics import Metrics


def values(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_depth_and_dead_letters_of_the_in_process_broker() -> None:
    broker = build_broker(None)
    broker.enqueue(session_event_message("s1", None))
    broker.enqueue(session_event_message("s2", None))
    broker.dead_letters_by_queue["sessions"].append(session_event_message("s3", None))  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    registry.register(QueueCollector(broker))
    depth = values(registry, "facesign_queue_depth")
    assert depth[(("queue", "sessions"), ("state", "ready"))] == 2
    assert depth[(("queue", "mail"), ("state", "ready"))] == 0
    assert values(registry, "facesign_dead_letters")[(("queue", "sessions"),)] == 1


def test_an_unreachable_redis_does_not_break_the_scrape() -> None:
    metrics = Metrics()
    metrics.add_collector("queue", QueueCollector(build_broker("redis://127.0.0.1:1/0")))
    assert values(metrics.registry, "facesign_queue_depth") == {}
    assert values(metrics.registry, "facesign_metrics_collector_up") == {(("collector", "queue"),): 0.0}
    errors = values(metrics.registry, "facesign_metrics_collector_errors_total")[(("collector", "queue"),)]
    assert errors >= 1  # one per failed scrape


def test_a_failing_decisions_collector_costs_only_its_own_samples() -> None:
    """The audit log unreachable (a database outage): the scrape still answers, and says so."""
    broken = True

    def totals() -> list[tuple[str, str, int]]:
        if broken:
            raise ConnectionError("database down")
        return [("approved", "verified", 3)]

    metrics = Metrics(totals)
    metrics.add_collector("queue", QueueCollector(build_broker(None)))
    metrics.webhooks.labels("accepted").inc()
    text = metrics.render().decode()
    assert "facesign_webhooks_received_total" in text and "facesign_queue_depth{" in text
    assert values(metrics.registry, "facesign_decisions_total") == {}
    up = values(metrics.registry, "facesign_metrics_collector_up")
    assert up == {(("collector", "database"),): 0.0, (("collector", "queue"),): 1.0}
    broken = False
    assert values(metrics.registry, "facesign_decisions_total") == {
        (("outcome", "approved"), ("reason", "verified")): 3.0
    }
    assert values(metrics.registry, "facesign_metrics_collector_up")[(("collector", "database"),)] == 1.0


def test_delayed_counts_messages_waiting_for_their_retry() -> None:
    broker = build_broker(None)
    broker.enqueue(session_event_message("s1", None), delay=60_000)
    broker.enqueue(session_event_message("s2", None), delay=60_000)
    registry = CollectorRegistry()
    registry.register(QueueCollector(broker))
    depth = values(registry, "facesign_queue_depth")
    assert depth[(("queue", "sessions"), ("state", "delayed"))] == 2
    assert depth[(("queue", "sessions"), ("state", "ready"))] == 0


@responses.activate
def test_facesign_errors_are_counted_by_status() -> None:
    registry = CollectorRegistry()
    registry.register(vendor_metrics().latency)
    registry.register(vendor_metrics().errors)
    before = values(registry, "facesign_api_errors_total").get((("status", "503"),), 0.0)
    responses.get("http://vendor/sessions/x", status=503)
    client = FaceSignClient("http://vendor", "k", policy=RetryPolicy(attempts=2, backoff_max=0.01))
    try:
        client.get_session("x")
    except FaceSignTransient:
        pass
    else:
        raise AssertionError("a 503 must raise")
    assert values(registry, "facesign_api_errors_total")[(("status", "503"),)] == before + 2
    latency = values(registry, "facesign_api_request_duration_seconds_count")
    assert latency[(("operation", "get_session"),)] >= 2


def test_a_hung_audit_log_read_does_not_outlast_the_scrape() -> None:
    release = threading.Event()

    def hung() -> list[tuple[str, str, int]]:
        release.wait(30)
        return []

    metrics = Metrics(hung)
    try:
        started = time.monotonic()
        up = values(metrics.registry, "facesign_metrics_collector_up")
        assert time.monotonic() - started < 4
        assert up == {(("collector", "database"),): 0.0}
    finally:
        release.set()
