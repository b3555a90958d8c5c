"""Prometheus metrics. Decision counts are read from the audit log, so every worker process counts."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from adapters.models import Decision


class DecisionsCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("facesign_decisions", "Decisions in the audit log", labels=["outcome", "reason"])

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would run collect() and so need the database at start-up.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        query = select(Decision.outcome, Decision.reason, func.count()).group_by(Decision.outcome, Decision.reason)
        with self.engine.connect() as connection:
            for outcome, reason, count in connection.execute(query):
                family.add_metric([outcome, reason], count)
        yield family


class Metrics:
    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
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
        if engine is not None:
            self.registry.register(DecisionsCollector(engine))

    def render(self) -> bytes:
        return generate_latest(self.registry)
