"""Prometheus metrics. Decision counts are read from the audit log, so every worker process counts.

A collector that reads another system (the audit log, the broker) can fail while that system is down.
Each is registered behind a guard: its failure costs its own samples only, never the scrape, and shows
as `facesign_metrics_collector_up{collector} 0` and a count in `facesign_metrics_collector_errors_total`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Totals = Callable[[], list[tuple[str, str, int]]]


class DecisionsCollector(Collector):
    """Counts read from the audit log, given `deadline` seconds: a hung database must not outlast the
    scrape (Prometheus gives up after 10 s by default). The read runs on one thread of its own, so a
    hung read holds up only the next scrape's read, never a pile of threads."""

    def __init__(self, totals: Totals, deadline: float = 2.0) -> None:
        self.totals = totals
        self.deadline = deadline
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-decisions")

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("facesign_decisions", "Decisions in the audit log", labels=["outcome", "reason"])

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would run collect() and so need the database at start-up.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for outcome, reason, count in self._reader.submit(self.totals).result(timeout=self.deadline):
            family.add_metric([outcome, reason], count)
        yield family


class CollectorHealth(Collector):
    """Whether each guarded collector answered in the latest scrape, and how often it failed."""

    def __init__(self) -> None:
        self._up: dict[str, bool] = {}
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, name: str, ok: bool) -> None:
        with self._lock:
            self._up[name] = ok
            self._errors[name] = self._errors.get(name, 0) + (0 if ok else 1)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        up = GaugeMetricFamily(
            "facesign_metrics_collector_up", "1 if the collector answered in this scrape", labels=["collector"]
        )
        errors = CounterMetricFamily(
            "facesign_metrics_collector_errors", "Scrapes in which the collector failed", labels=["collector"]
        )
        return up, errors

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, errors = self._families()
        with self._lock:
            for name in sorted(self._up):
                up.add_metric([name], 1.0 if self._up[name] else 0.0)
                errors.add_metric([name], self._errors[name])
        yield up
        yield errors


class Guarded(Collector):
    """A collector whose failures are recorded instead of failing the scrape."""

    def __init__(self, name: str, inner: Collector, health: CollectorHealth) -> None:
        self.name = name
        self.inner = inner
        self.health = health

    def describe(self) -> Iterator[Metric]:
        describe = getattr(self.inner, "describe", None)
        return iter(describe()) if describe is not None else iter(())

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self.inner.collect())
        except Exception as exc:  # the system behind it is down: its gauges go, the rest of the scrape stays
            log.warning("metrics: collector %s failed: %s", self.name, type(exc).__name__)
            self.health.record(self.name, False)
            return iter(())
        self.health.record(self.name, True)
        return iter(families)


class Metrics:
    def __init__(self, decision_totals: Totals | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter(
            "facesign_webhooks_received", "Webhook deliveries by result", ["result"], registry=self.registry
        )
        self.signature_failures = Counter(
            "facesign_webhook_signature_failures",
            "Rejected webhook signatures by reason",
            ["reason"],
            registry=self.registry,
        )
        self.recovery_starts_refused = Counter(
            "facesign_recovery_starts_refused",
            "POST /recoveries answered 503, by reason (busy, vendor, database)",
            ["reason"],
            registry=self.registry,
        )
        self.health = CollectorHealth()
        self.registry.register(self.health)
        if decision_totals is not None:
            self.add_collector("decisions", DecisionsCollector(decision_totals))

    def add_collector(self, name: str, collector: Collector) -> None:
        """Register `collector` behind a guard; the health family stays last, so it reports this very scrape."""
        self.registry.unregister(self.health)
        self.registry.register(Guarded(name, collector, self.health))
        self.registry.register(self.health)

    def render(self) -> bytes:
        return generate_latest(self.registry)
