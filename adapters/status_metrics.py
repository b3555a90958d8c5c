"""What the background work last did, as Prometheus gauges: the reconciler's last pass and the audit
chain's last verification. Alerts read them (deploy/prometheus/alerts.yml).

Nothing is exported until it has happened, so a process that runs no reconciler (a receiver in Redis
mode) exports nothing rather than a misleading zero, and "absent" means "not running".
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class StatusMetrics(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_pass: float | None = None
        self._chain: tuple[bool, int, float] | None = None

    def reconciled(self, at: float) -> None:
        """A reconciler pass finished (a failed pass is not one)."""
        with self._lock:
            self._last_pass = at

    def chain_checked(self, intact: bool, rows: int, at: float) -> None:
        with self._lock:
            self._chain = (intact, rows, at)

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            last_pass, chain = self._last_pass, self._chain
        if last_pass is not None:
            yield GaugeMetricFamily(
                "facesign_reconciler_last_pass_timestamp_seconds",
                "When the reconciler last finished a pass (Unix time)",
                value=last_pass,
            )
        if chain is not None:
            intact, rows, at = chain
            yield GaugeMetricFamily(
                "facesign_audit_chain_intact",
                "1 when the audit chain verified intact at the last check, else 0",
                value=1 if intact else 0,
            )
            yield GaugeMetricFamily(
                "facesign_audit_chain_rows", "Rows in the audit chain at the last verification", value=rows
            )
            yield GaugeMetricFamily(
                "facesign_audit_chain_verified_timestamp_seconds",
                "When the audit chain was last verified (Unix time)",
                value=at,
            )


@functools.cache
def status_metrics() -> StatusMetrics:
    """One per process: the reconciler writes it, whoever serves metrics in that process registers it."""
    return StatusMetrics()


def serve_metrics(host: str, port: int, *collectors: Collector) -> int:
    """Serve these collectors on http://host:port/metrics from a daemon thread (a standalone `reconcile`)
    and return the port; a port already taken falls back to a free one, as the workers' do, so that a
    second reconciler on one host still runs. Raises OSError when it cannot listen at all."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError:
        server, _ = start_http_server(0, addr=host, registry=registry)
    return int(server.server_port)
