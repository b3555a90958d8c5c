"""The reconciler's gauges: its last pass and the audit chain's verdict, for the alerts to read."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from adapters.status_metrics import StatusMetrics, status_metrics
from config import Settings
from receiver.app import create_app
from tests.fakes import make_deps, make_services
from tests.integration.test_audit_rows import fill
from tests.integration.test_audit_tamper import edit, tamper
from usecases.anchoring import AnchorWriter
from usecases.reconcile import check_chain, run_forever


def exposition(collector: StatusMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_nothing_is_exported_before_it_happened() -> None:
    fresh = StatusMetrics()
    assert "facesign_" not in exposition(fresh)  # absent, so "reconciler not running" can fire on absence
    fresh.reconciled(1_700_000_000.0)
    fresh.chain_checked(False, 12, 1_700_000_100.0)
    text = exposition(fresh)
    assert gauge(text, "facesign_reconciler_last_pass_timestamp_seconds") == 1_700_000_000.0
    assert gauge(text, "facesign_audit_chain_intact") == 0 and gauge(text, "facesign_audit_chain_rows") == 12


def test_the_reconciler_loop_records_its_passes_and_the_chain(tmp_path: Path) -> None:
    deps, _ = make_deps(f"sqlite:///{tmp_path}/db.sqlite", str(tmp_path / "mail"), reconcile_interval=1)
    fill(deps.db.engine, 3)
    stop = threading.Event()
    started = time.time()
    thread = threading.Thread(target=run_forever, args=(deps, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = generate_latest_of_receiver(tmp_path)
        passed = gauge(text, "facesign_reconciler_last_pass_timestamp_seconds") or 0
        if min(passed, gauge(text, "facesign_audit_chain_verified_timestamp_seconds") or 0) >= started:
            break
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert (gauge(text, "facesign_reconciler_last_pass_timestamp_seconds") or 0) >= started, text
    assert gauge(text, "facesign_audit_chain_intact") == 1 and gauge(text, "facesign_audit_chain_rows") == 3


def generate_latest_of_receiver(tmp_path: Path) -> str:
    """What an embedded `serve` shows on /metrics: the reconciler runs in its process."""
    app = create_app(make_services(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite")))
    return TestClient(app, client=("127.0.0.1", 50000)).get("/metrics").text


def test_a_tampered_chain_turns_the_gauge_to_zero(tmp_path: Path) -> None:
    deps, _ = make_deps(f"sqlite:///{tmp_path}/db.sqlite", str(tmp_path / "mail"))
    fill(deps.db.engine, 6)
    anchors = AnchorWriter.for_settings(deps.db, deps.settings, "test")
    assert check_chain(deps, anchors) is True
    tamper(deps.db.engine, edit)
    assert check_chain(deps, anchors) is False
    assert gauge(exposition(status_metrics()), "facesign_audit_chain_intact") == 0
