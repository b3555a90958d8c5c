"""The `POST /recoveries` limit is shared through Redis when REDIS_URL is set, and fails open without it."""

from __future__ import annotations

import uuid
from pathlib import Path

from starlette.testclient import TestClient

from tests.conftest import free_port
from tests.unit.test_page import make_client


def test_receivers_on_one_redis_share_the_limit(tmp_path: Path, redis_url: str) -> None:
    """Two receiver processes (two apps, two limiter storages) count the same address together."""
    first_app = make_client(tmp_path / "a", redis_url=redis_url, recoveries_per_minute=3)[0].app
    second_app = make_client(tmp_path / "b", redis_url=redis_url, recoveries_per_minute=3)[0].app
    address = (f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:8]}", 50000)
    first = TestClient(first_app, client=address)
    second = TestClient(second_app, client=address)
    codes = [client.post("/recoveries").status_code for client in (first, second, first, second)]
    assert codes == [201, 201, 201, 429]
    other = TestClient(second_app, client=(f"other-{uuid.uuid4().hex}", 50000))
    assert other.post("/recoveries").status_code == 201


def test_unreachable_limit_store_lets_people_recover(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", recoveries_per_minute=1)
    assert [client.post("/recoveries").status_code for _ in range(2)] == [201, 201]
