"""SIGTERM to a worker while an actor is in flight: the actor finishes, the worker exits, nothing is left."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.chaos.harness import SECRET, RedisServer, wait_until
from tests.conftest import free_port, unavailable
from tests.e2e.conftest import Processes, base_env, poll_status, wait_http

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.postgres]

SLOW_MS = 3000  # the vendor's answer takes this long, so the actor is surely mid-flight at SIGTERM


def test_sigterm_lets_the_in_flight_actor_finish(processes: Processes, tmp_path: Path, postgres_url: str) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))
    redis_server = RedisServer(free_port(), tmp_path)
    redis_server.start()
    try:
        port, sandbox_port = free_port(), free_port()
        base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
        env = base_env(
            DATABASE_URL=postgres_url,
            REDIS_URL=redis_server.url,
            FACESIGN_API_KEY="k",
            FACESIGN_API_URL=sandbox,
            FACESIGN_WEBHOOK_SECRET=SECRET,
            PUBLIC_BASE_URL=base,
            dramatiq_prom_port=str(free_port()),
        )
        assert processes.run(env, "db", "upgrade").returncode == 0
        processes.start("sandbox", env, "sandbox", "--port", str(sandbox_port))
        processes.start("serve", env, "serve", "--port", str(port))
        worker = processes.start("worker", env, "worker", "--processes", "1", "--threads", "2")
        wait_http(f"{sandbox}/sandbox/enrollments", procs=processes)
        wait_http(f"{base}/readyz", procs=processes)

        created = requests.post(f"{base}/recoveries", json={}, timeout=10).json()
        session_id = created["url"].rstrip("/").rsplit("/", 1)[-1]
        requests.post(f"{sandbox}/sandbox/faults", json={"latencyMs": SLOW_MS}, timeout=5)
        requests.post(f"{sandbox}/sandbox/sessions/{session_id}/complete", json={"identity": "unknown"}, timeout=5)
        # Accepted by the receiver means enqueued; the worker then spends SLOW_MS waiting on the vendor.
        delivered = wait_until(
            lambda: any(
                d["status"] == 200
                for d in requests.get(f"{sandbox}/sandbox/sessions/{session_id}/deliveries", timeout=5).json()
            ),
            timeout=20,
            interval=0.1,
        )
        assert delivered, processes.logs()
        time.sleep(1.0)
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # what `docker stop` does to PID 1
        assert worker.wait(timeout=40) == 0, processes.logs()
        assert time.monotonic() - stopping >= 1.0, "the worker did not wait for its in-flight actor"

        assert poll_status(base, created["id"], timeout=5) == "denied", processes.logs()
        assert redis_server.in_flight() == 0
    finally:
        processes.stop_all()
        redis_server.stop()
