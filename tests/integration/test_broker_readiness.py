"""The receiver's readiness check of Redis: it must take a write and have headroom under its maxmemory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from adapters.queue.broker import BrokerNotReady, SessionEvents, build_broker
from tests.chaos.harness import RedisServer
from tests.conftest import free_port, unavailable

pytestmark = pytest.mark.redis


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))
    server = RedisServer(free_port(), tmp_path, maxmemory="16mb")
    server.start()
    yield server
    server.stop()


def test_ready_with_headroom_not_ready_near_the_limit_or_full(small_redis: RedisServer) -> None:
    events = SessionEvents(build_broker(small_redis.url), redis_url=small_redis.url)
    events.ping()
    client = redis.Redis.from_url(small_redis.url)
    limit = int(client.info("memory")["maxmemory"])
    number = 0
    while int(client.info("memory")["used_memory"]) < 0.92 * limit:
        client.set(f"filler:{number}", b"x" * 65536)
        number += 1
    with pytest.raises(BrokerNotReady, match="maxmemory"):
        events.ping()  # writes still work, but workers are about to lose the room to heartbeat
    small_redis.fill()
    with pytest.raises(redis.OutOfMemoryError):
        events.ping()
    small_redis.make_room()
    events.ping()
