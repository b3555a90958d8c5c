"""Broker tuning: a crashed worker's messages come back in seconds, and operators can change it."""

from __future__ import annotations

import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.prometheus import Prometheus

from adapters.logs import LogsAtBoot
from adapters.queue.broker import broker_for, build_broker
from config import Settings

URL = "redis://127.0.0.1:1/0"  # never contacted: building a RedisBroker does no I/O


def test_a_crashed_workers_messages_come_back_in_seconds_by_default() -> None:
    broker = broker_for(Settings.from_env({"REDIS_URL": URL}), worker=True)
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout <= 30_000  # Dramatiq's own default, a minute, leaves them stuck that long
    assert broker.maintenance_chance >= 10_000  # a maintenance pass within seconds of polling
    kinds = {type(m) for m in broker.middleware}
    assert Prometheus in kinds and LogsAtBoot in kinds


def test_only_worker_processes_get_the_worker_middleware() -> None:
    # Prometheus' enqueue hook needs the worker's boot signal; in the receiver it would fail on retries.
    kinds = {type(m) for m in build_broker(URL).middleware}
    assert Prometheus not in kinds and LogsAtBoot not in kinds


def test_environment_overrides() -> None:
    env = {"REDIS_URL": URL, "DRAMATIQ_HEARTBEAT_TIMEOUT": "3000", "DRAMATIQ_MAINTENANCE_CHANCE": "1000000"}
    broker = broker_for(Settings.from_env(env))
    assert (broker.heartbeat_timeout, broker.maintenance_chance) == (3000, 1_000_000)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value"), [("DRAMATIQ_HEARTBEAT_TIMEOUT", "10"), ("DRAMATIQ_MAINTENANCE_CHANCE", "x")]
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        broker_for(Settings.from_env({"REDIS_URL": URL, name: value}))


def test_embedded_broker_has_no_prometheus_middleware() -> None:
    assert Prometheus not in {type(m) for m in build_broker(None, worker=True).middleware}
