"""The Grafana dashboard and the Prometheus alert rules: valid PromQL, every alert fired by a unit test
on recorded series (promtool), and every metric they read exported by the service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from starlette.testclient import TestClient

from adapters.queue.broker import SessionEvents, build_broker
from adapters.status_metrics import StatusMetrics
from config import Settings
from receiver.app import create_app
from tests.conftest import unavailable
from tests.fakes import make_services
from tests.unit.test_status_metrics import exposition

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "facesign-recovery.json"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$rate_limit": "900"}
# Exported by other processes only: Dramatiq's middleware in each worker.
ELSEWHERE = {"dramatiq_message_errors_total"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        unavailable("promtool (Debian package prometheus)", FileNotFoundError("promtool"))
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)  # noqa: S603


def alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    for name, value in GRAFANA_VARIABLES.items():
        queries = [query.replace(name, value) for query in queries]
    return queries


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {
        check["alertname"] for case in cases for check in case.get("alert_rule_test", []) if check.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alerts()}
    assert names <= fired, f"alerts no test fires: {sorted(names - fired)}"
    assert {
        "FaceSignRecoveryDeadLetters",
        "FaceSignRecoveryQueueGrowing",
        "FaceSignRecoveryFaceSignErrors",
        "FaceSignRecoveryNoDecisions",
        "FaceSignRecoveryAuditChainBroken",
        "FaceSignRecoveryReconcilerNotRunning",
    } <= names


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for number, query in enumerate(dashboard_queries()):
        rules["groups"][0]["rules"].append({"record": f"dashboard:query_{number}", "expr": query})  # type: ignore[index]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_is_portable_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] == "facesign-recovery"
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", "a datasource picked at import, not a fixed uid"
    assert {variable["name"] for variable in dash["templating"]["list"]} >= {"datasource", "rate_limit"}


def exported_metric_names(tmp_path: Path) -> set[str]:
    """Sample names the receiver's /metrics and the reconciler's gauges can show."""
    services = make_services(
        Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"),
        events=SessionEvents(build_broker(None)),
    )
    text = TestClient(create_app(services), client=("127.0.0.1", 50000)).get("/metrics").text
    status = StatusMetrics()
    status.reconciled(1.0)
    status.chain_checked(True, 1, 1.0)
    text += exposition(status)
    names = set()
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", text, re.MULTILINE):
        names |= {name.removesuffix("_total") + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def test_every_metric_the_dashboard_and_alerts_read_is_exported(tmp_path: Path) -> None:
    exported = exported_metric_names(tmp_path) | ELSEWHERE
    queries = dashboard_queries() + [rule["expr"] for rule in alerts()]
    used = {name for query in queries for name in re.findall(r"\b((?:facesign|dramatiq)_\w+)", query)}
    assert used - exported == set(), f"read but exported by nothing: {sorted(used - exported)}"
    assert "facesign_webhooks_received_total" in used and "facesign_audit_chain_intact" in used
