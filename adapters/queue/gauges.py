"""Queue depth and dead-letter gauges, read from the broker when Prometheus scrapes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.queue.names import QUEUES

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _counts(self, queue: str) -> tuple[int, int, int]:
        """(ready, delayed, dead) for one queue."""
        broker = self.broker
        if isinstance(broker, RedisBroker):
            prefix = f"{broker.namespace}:{queue}"
            pipe = broker.client.pipeline(transaction=False)
            pipe.llen(prefix)
            pipe.llen(f"{prefix}.DQ")
            pipe.zcard(f"{prefix}.XQ")
            ready, delayed, dead = pipe.execute()
            return int(ready), int(delayed), int(dead)
        if isinstance(broker, StubBroker):
            dead_letters = broker.dead_letters_by_queue.get(queue, [])
            return broker.queues[queue].qsize(), broker.queues[dq_name(queue)].qsize(), len(dead_letters)
        return 0, 0, 0

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("facesign_queue_depth", "Messages waiting in the broker", labels=["queue", "state"])
        dead = GaugeMetricFamily(
            "facesign_dead_letters", "Messages in the dead-letter queue (kept 7 days)", labels=["queue"]
        )
        try:
            for queue in QUEUES:
                ready, delayed, dead_count = self._counts(queue)
                depth.add_metric([queue, "ready"], ready)
                depth.add_metric([queue, "delayed"], delayed)
                dead.add_metric([queue], dead_count)
        except (redis.RedisError, KeyError) as exc:
            # The scrape still answers; /readyz says the broker is down.
            log.warning("queue gauges unavailable: %s", type(exc).__name__)
            return
        yield depth
        yield dead
