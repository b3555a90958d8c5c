"""A PostgreSQL that is down or hung (behind a TCP proxy we stop or pause): errors within a bound, never a
hung thread, and the receiver answers for what it can (503s that say so, /metrics, /readyz)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from adapters.db.engine import Database, DatabaseUnavailable, Timeouts
from config import Settings
from receiver.app import create_app
from tests.fakes import FakeFaceSign, make_services, migrated
from tests.proxy import TcpProxy

TIMEOUTS = Timeouts(connect=1, statement=1, keepalives_idle=5)
BOUND = 6.0  # seconds: the checkout ping cut at statement + margin, then one connect timeout, and slack


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    migrated(postgres_url).dispose()
    url = make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def timed(call: Any) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_a_hung_database_gives_errors_within_a_bound_then_recovers(proxied: tuple[TcpProxy, str]) -> None:
    proxy, url = proxied
    db = Database.connect(url, TIMEOUTS, pool_size=2, max_overflow=0)
    db.ping()
    proxy.pause()
    for _ in range(2):  # a pooled connection that hangs, then a new one that never gets an answer
        elapsed, error = timed(db.ping)
        assert isinstance(error, DatabaseUnavailable) and elapsed < BOUND, (elapsed, error)
    proxy.resume()
    elapsed, error = timed(db.ping)
    assert error is None and elapsed < 1.0
    db.dispose()


def test_a_statement_in_flight_when_the_database_hangs_is_cut_off(proxied: tuple[TcpProxy, str]) -> None:
    proxy, url = proxied
    db = Database.connect(url, TIMEOUTS, pool_size=2, max_overflow=0)
    db.ping()
    threading.Timer(0.3, proxy.pause).start()

    def slow_query() -> None:
        with db.reading() as session:
            session.execute(text("SELECT pg_sleep(0.8)"))

    elapsed, error = timed(slow_query)
    assert isinstance(error, DatabaseUnavailable) and elapsed < BOUND, (elapsed, error)
    proxy.resume()
    db.ping()
    db.dispose()


def test_statement_timeout_is_set_on_every_connection(postgres_url: str) -> None:
    db = Database.connect(postgres_url, TIMEOUTS)
    with db.reading() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "1s"

    def slow_query() -> None:
        with db.reading() as session:
            session.execute(text("SELECT pg_sleep(3)"))

    elapsed, error = timed(slow_query)
    assert isinstance(error, DatabaseUnavailable) and elapsed < 2.5
    db.dispose()


def test_the_checkout_ping_leaves_no_transaction_open(postgres_url: str) -> None:
    """A caller gets an idle connection: it may still pick autocommit or an isolation level."""
    db = Database.connect(postgres_url, TIMEOUTS)
    for _ in range(2):  # a fresh connection, then one back from the pool
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    with db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.info.transaction_status.name == "IDLE"
    db.dispose()


def receiver_on(url: str, facesign: FakeFaceSign) -> tuple[TestClient, Any]:
    settings = Settings(database_url=url, webhook_secrets=("s",))
    services = make_services(settings, db=Database.connect(url, TIMEOUTS), facesign=facesign)
    return TestClient(create_app(services), raise_server_exceptions=False, client=("127.0.0.1", 50000)), services


def collector_up(metrics_text: str, collector: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "facesign_metrics_collector_up" and sample.labels == {"collector": collector}:
                return sample.value
    raise AssertionError(f"no facesign_metrics_collector_up for {collector}")


@pytest.mark.parametrize("fault", ["stopped", "hung"])
def test_the_receiver_during_a_database_outage(proxied: tuple[TcpProxy, str], fault: str) -> None:
    proxy, url = proxied
    facesign = FakeFaceSign()
    client, _ = receiver_on(url, facesign)
    attempt_id = client.post("/recoveries").json()["id"]
    assert collector_up(client.get("/metrics").text, "database") == 1.0
    proxy.stop() if fault == "stopped" else proxy.pause()

    started = time.monotonic()
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and time.monotonic() - started < 3  # the audit-log read's own deadline
    assert collector_up(metrics.text, "database") == 0.0
    assert "facesign_webhooks_received_total" in metrics.text

    started = time.monotonic()
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["failed"]) == (503, ["database"])
    assert time.monotonic() - started < 2.5  # the readiness deadline, whatever the database does

    sessions_before = len(facesign.sessions)
    refused = client.post("/recoveries")
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert len(facesign.sessions) == sessions_before  # no vendor session for an attempt not written
    assert client.get(f"/recoveries/{attempt_id}").status_code == 503
    if fault == "hung":
        proxy.resume()
        assert client.get(f"/recoveries/{attempt_id}").json()["status"] == "pending"
