"""Queue depth and dead-letter gauges, read from the broker when Prometheus scrapes.

States: `ready` waits in the queue for a worker; `in_flight` was fetched by a worker and is not yet
acknowledged (being processed, or prefetched); `delayed` waits for its retry time. Dramatiq keeps a
delayed message in `<queue>.DQ` only until a worker's delay-queue consumer fetches it, and that
consumer fetches everything at once and holds it in memory until its time, so the list is nearly
always empty: what is really delayed is the delay queue's message store (`<queue>.DQ.msgs`), which
keeps each message until the worker moves it back to its queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.queue.group_commit import queue_keys
from adapters.queue.names import QUEUES

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Raises when the broker cannot be read: the caller's guard counts it (receiver/metrics.py)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _counts(self, queue: str) -> tuple[int, int, int, int]:
        """(ready, in flight, delayed, dead) for one queue."""
        broker = self.broker
        if isinstance(broker, RedisBroker):
            messages, waiting = queue_keys(broker.namespace, queue)
            delayed_messages, _ = queue_keys(broker.namespace, dq_name(queue))
            pipe = broker.client.pipeline(transaction=False)
            pipe.llen(waiting)
            pipe.hlen(messages)
            pipe.hlen(delayed_messages)
            pipe.zcard(f"{broker.namespace}:{queue}.XQ")
            ready, stored, delayed, dead = (int(value) for value in pipe.execute())
            return ready, max(stored - ready, 0), delayed, dead
        if isinstance(broker, StubBroker):
            # unfinished_tasks: put and not yet acknowledged, as StubBroker.join counts them.
            main, delay = broker.queues[queue], broker.queues[dq_name(queue)]
            dead_letters = broker.dead_letters_by_queue.get(queue, [])
            ready = main.qsize()
            return ready, max(main.unfinished_tasks - ready, 0), delay.unfinished_tasks, len(dead_letters)
        return 0, 0, 0, 0

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        depth = GaugeMetricFamily("facesign_queue_depth", "Messages held by the broker", labels=["queue", "state"])
        dead = GaugeMetricFamily(
            "facesign_dead_letters", "Messages in the dead-letter queue (kept 7 days)", labels=["queue"]
        )
        return depth, dead

    def describe(self) -> Iterator[Metric]:
        # Names only: registering must not need the broker.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        depth, dead = self._families()
        for queue in QUEUES:
            ready, in_flight, delayed, dead_count = self._counts(queue)
            depth.add_metric([queue, "ready"], ready)
            depth.add_metric([queue, "in_flight"], in_flight)
            depth.add_metric([queue, "delayed"], delayed)
            dead.add_metric([queue], dead_count)
        yield depth
        yield dead
