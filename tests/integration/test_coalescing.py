"""The coalescing scenarios of tests/unit/test_coalescing.py on a real Redis: the group commit's script
sets the markers, the workers' RedisPending clears them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.fakes import FakeFaceSign, make_deps
from tests.unit.test_coalescing import SCENARIOS, RedisLane
from usecases.deps import Deps


@pytest.fixture
def lane(redis_url: str, redis_namespace: str) -> Iterator[RedisLane]:
    client = redis.Redis.from_url(redis_url)
    yield RedisLane(client, lambda: redis.asyncio.Redis.from_url(redis_url), redis_namespace)
    client.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_on_real_redis(
    scenario: Callable[[RedisLane, Deps, FakeFaceSign], None], lane: RedisLane, tmp_path: Path
) -> None:
    deps, fake = make_deps(f"sqlite:///{tmp_path}/coalescing.db", str(tmp_path / "mail"))
    deps.pending = lane.pending
    try:
        scenario(lane, deps, fake)
    finally:
        deps.db.dispose()
