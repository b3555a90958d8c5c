"""A standalone `reconcile` serves its gauges for Prometheus: its last pass, the chain's verdict and its
share of the FaceSign budget."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests

from tests.conftest import free_port
from tests.e2e.conftest import Processes, base_env, wait_http


def test_reconcile_serves_its_last_pass_and_the_chain_verdict(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    env = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/r.db",
        FACESIGN_SANDBOX="1",
        RECONCILE_INTERVAL="1",
        RECONCILER_METRICS_PORT=str(port),
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    started = time.time()
    processes.start("reconcile", env, "reconcile")
    url = f"http://127.0.0.1:{port}/metrics"
    wait_http(url, procs=processes)
    deadline, text = time.monotonic() + 20, ""
    while time.monotonic() < deadline and "facesign_audit_chain_intact" not in text:
        text = requests.get(url, timeout=5).text
        time.sleep(0.2)
    last_pass = re.search(r"^facesign_reconciler_last_pass_timestamp_seconds (\S+)$", text, re.MULTILINE)
    assert last_pass and float(last_pass.group(1)) >= started - 1, text
    assert re.search(r"^facesign_audit_chain_intact 1\.0$", text, re.MULTILINE), text
    # Declared even before the reconciler first asks FaceSign: a dashboard finds the series.
    assert "# TYPE facesign_budget_waits_total counter" in text, text
    assert "# TYPE facesign_api_rate_limited_total counter" in text, text
