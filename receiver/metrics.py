"""Prometheus metrics. Decision counts are read from the audit log, so every worker process counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from usecases.app_events import Stats

log = logging.getLogger(__name__)
Totals = Callable[[], list[tuple[str, str, int]]]
EventStats = Callable[[], Stats]


class DecisionsCollector(Collector):
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
        try:
            stats = self.stats()
        except Exception as exc:  # the scrape still answers; /readyz says the database is down
            log.warning("event gauges unavailable: %s", type(exc).__name__)
            return
        for state, count in sorted(stats.deliveries.items()):
            deliveries.add_metric([state], count)
        oldest.add_metric([], stats.oldest_undelivered_age)
        yield deliveries
        yield oldest


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
        if decision_totals is not None:
            self.registry.register(DecisionsCollector(decision_totals))
        if event_stats is not None:
            self.registry.register(AppEventsCollector(event_stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
