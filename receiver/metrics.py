"""Prometheus metrics. Decision counts are read from the audit log, so every worker process counts.

A collector that reads another system (the audit log, the broker) can fail while that system is down.
Each is registered behind a guard: its failure costs its own samples only, never the scrape, and shows
as `facesign_metrics_collector_up{collector} 0` and a count in `facesign_metrics_collector_errors_total`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from usecases.app_events import Stats

log = logging.getLogger(__name__)

Totals = Callable[[], list[tuple[str, str, int]]]
EventStats = Callable[[], Stats]


class DecisionsCollector(Collector):
    """Counts read from the audit log."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("facesign_decisions", "Decisions in the audit log", labels=["outcome", "reason"])

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would run collect() and so need the database at start-up.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for outcome, reason, count in self.totals():
            family.add_metric([outcome, reason], count)
        yield family


class AppEventsCollector(Collector):
    """The application's events, read from their outbox: every worker's deliveries count."""

    def __init__(self, stats: EventStats) -> None:
        self.stats = stats

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        deliveries = GaugeMetricFamily(
            "facesign_app_event_deliveries",
            "Event deliveries to the application by state (failed: dead letters, see `events list --failed`)",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "facesign_app_event_oldest_undelivered_seconds", "Age of the oldest event not yet delivered everywhere"
        )
        return deliveries, oldest

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        deliveries, oldest = self._families()
        stats = self.stats()
        for state, count in sorted(stats.deliveries.items()):
            deliveries.add_metric([state], count)
        oldest.add_metric([], stats.oldest_undelivered_age)
        yield deliveries
        yield oldest


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
    """Collectors that read another system, given `deadline` seconds together: their failure (or a hung
    system: Prometheus gives up on the whole scrape after 10 s by default) is recorded instead of failing
    the scrape. They read on one thread of their own, so a hung read holds up only the next scrape's
    read, never a pile of threads."""

    def __init__(self, name: str, inner: Sequence[Collector], health: CollectorHealth, deadline: float) -> None:
        self.name = name
        self.inner = inner
        self.health = health
        self.deadline = deadline
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"metrics-{name}")

    def describe(self) -> Iterator[Metric]:
        for collector in self.inner:
            describe = getattr(collector, "describe", None)
            if describe is not None:
                yield from describe()

    def _read(self) -> list[Metric]:
        return [family for collector in self.inner for family in collector.collect()]

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._reader.submit(self._read).result(timeout=self.deadline)
        except Exception as exc:  # the system behind it is down: its gauges go, the rest of the scrape stays
            log.warning("metrics: collector %s failed: %s", self.name, type(exc).__name__)
            self.health.record(self.name, False)
            return iter(())
        self.health.record(self.name, True)
        return iter(families)


class Metrics:
    def __init__(self, decision_totals: Totals | None = None, event_stats: EventStats | None = None) -> None:
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
            "POST /recoveries answered 503, by reason (busy, budget, vendor, database)",
            ["reason"],
            registry=self.registry,
        )
        self.health = CollectorHealth()
        self.registry.register(self.health)
        # The audit log's counts and the application events' outbox: one database, one deadline.
        readers: list[Collector] = []
        if decision_totals is not None:
            readers.append(DecisionsCollector(decision_totals))
        if event_stats is not None:
            readers.append(AppEventsCollector(event_stats))
        if readers:
            self.add_collector("database", *readers)

    def add_collector(self, name: str, *collectors: Collector, deadline: float = 2.0) -> None:
        """Register collectors behind one guard; the health family stays last, so it reports this very scrape."""
        self.registry.unregister(self.health)
        self.registry.register(Guarded(name, collectors, self.health, deadline))
        self.registry.register(self.health)

    def render(self) -> bytes:
        return generate_latest(self.registry)
