"""Prometheus metrics. Decision counts are read from the audit log, so every worker process counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

Totals = Callable[[], list[tuple[str, str, int]]]


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
        if decision_totals is not None:
            self.registry.register(DecisionsCollector(decision_totals))

    def render(self) -> bytes:
        return generate_latest(self.registry)
