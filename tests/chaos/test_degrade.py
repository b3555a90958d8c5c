"""Faults on one side, real processes all round: nobody who finished in time is denied by our delays, and
no fault stalls the rest. Each test prints the measured recovery time (`-s` or the chaos summary shows it).

- a 30 s vendor: health, readiness, the status poll and /metrics stay fast; starts get a prompt 503;
- a full Redis: the receiver answers 503, /readyz says so, and the workers drain once room is made;
- QUEUE_MAX_MESSAGES: the receiver refuses before Redis fills up;
- a 7 s Redis stall with short worker timeouts: nothing stays stranded, every mail goes out;
- a session finished in time and decided after the deadline (no worker until then): approved.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.chaos.harness import SECRET, RedisServer, wait_until
from tests.conftest import free_port, unavailable
from tests.e2e.conftest import Processes, base_env, wait_http

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(240)]

USER = "ada@example.com"


def need_redis_server() -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))


class Stack:
    """Sandbox, `serve` and (optionally) a worker on one environment."""

    def __init__(self, processes: Processes, tmp_path: Path, **env: str) -> None:
        self.processes = processes
        self.port, self.sandbox_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        self.mail_dir = tmp_path / "mail"
        self.env = base_env(
            MAIL_BACKEND="file",
            MAIL_DIR=str(self.mail_dir),
            FACESIGN_API_KEY="degrade-key",
            FACESIGN_API_URL=self.sandbox,
            FACESIGN_WEBHOOK_SECRET=SECRET,
            PUBLIC_BASE_URL=self.base,
            RECOVERIES_PER_MINUTE="1000000",
            RECOVERIES_PER_MINUTE_TOTAL="1000000",
            dramatiq_prom_port=str(free_port()),
            **env,
        )
        self.workers = 0

    def start(self, worker: bool = True) -> Stack:
        processes, env = self.processes, self.env
        assert processes.run(env, "db", "upgrade").returncode == 0
        assert processes.run(env, "users", "add", USER, "--id", "ada").returncode == 0
        self.vendor = processes.start("sandbox", env, "sandbox", "--port", str(self.sandbox_port))
        processes.start("serve", env, "serve", "--port", str(self.port))
        if worker:
            self.start_worker()
        wait_http(f"{self.sandbox}/sandbox/enrollments", procs=processes)
        wait_http(f"{self.base}/readyz", procs=processes)
        answer = requests.post(f"{self.sandbox}/sandbox/enrollments", json={"email": USER, "name": "Ada"}, timeout=5)
        assert answer.status_code == 201
        return self

    def start_worker(self) -> None:
        self.workers += 1
        env = {**self.env, "dramatiq_prom_port": str(free_port())}
        self.processes.start(f"worker-{self.workers}", env, "worker", "--processes", "1", "--threads", "4")

    def kill_vendor(self) -> None:
        """The sandbox still holds requests it is slowing down; nobody waits for them at the end."""
        os.killpg(self.vendor.pid, signal.SIGKILL)
        self.vendor.wait(timeout=10)

    def faults(self, **knobs: Any) -> None:
        assert requests.post(f"{self.sandbox}/sandbox/faults", json=knobs, timeout=5).status_code == 200

    def start_recovery(self) -> tuple[str, str]:
        answer = requests.post(f"{self.base}/recoveries", json={}, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"], answer.json()["url"].rstrip("/").rsplit("/", 1)[-1]

    def finish(self, session_id: str) -> None:
        answer = requests.post(
            f"{self.sandbox}/sandbox/sessions/{session_id}/complete", json={"identity": USER}, timeout=10
        )
        assert answer.status_code == 200, answer.text

    def status(self, attempt_id: str) -> str:
        return str(requests.get(f"{self.base}/recoveries/{attempt_id}", timeout=10).json()["status"])

    def all_decided(self, attempt_ids: list[str]) -> bool:
        return all(self.status(attempt_id) != "pending" for attempt_id in attempt_ids)

    def deliveries(self, session_id: str) -> list[int | None]:
        answer = requests.get(f"{self.sandbox}/sandbox/sessions/{session_id}/deliveries", timeout=5)
        return [delivery["status"] for delivery in answer.json()]


def report(capsys: Any, line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}")


def timed_get(url: str) -> float:
    started = time.perf_counter()
    answer = requests.get(url, timeout=10)
    elapsed = time.perf_counter() - started
    assert answer.status_code in (200, 503), (url, answer.status_code)
    return elapsed


def test_a_slow_vendor_never_slows_health_status_or_metrics(processes: Processes, tmp_path: Path, capsys: Any) -> None:
    stack = Stack(processes, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/slow.db").start(worker=False)
    existing, _ = stack.start_recovery()
    stack.faults(latencyMs=30_000)

    answers: list[tuple[int, float]] = []

    def start_one() -> None:
        started = time.monotonic()
        answer = requests.post(f"{stack.base}/recoveries", json={}, timeout=60)
        answers.append((answer.status_code, time.monotonic() - started))

    with ThreadPoolExecutor(50) as pool:
        for _ in range(50):
            pool.submit(start_one)
        time.sleep(1.0)  # all 50 are waiting now: 8 on FaceSign, 42 for a slot
        probes: dict[str, list[float]] = {"readyz": [], "healthz": [], "status": [], "metrics": []}
        for _ in range(10):
            probes["readyz"].append(timed_get(f"{stack.base}/readyz"))
            probes["healthz"].append(timed_get(f"{stack.base}/healthz"))
            probes["status"].append(timed_get(f"{stack.base}/recoveries/{existing}"))
            probes["metrics"].append(timed_get(f"{stack.base}/metrics"))
            time.sleep(0.2)
    stack.faults(latencyMs=0)
    healed = time.monotonic()
    wait_until(lambda: requests.post(f"{stack.base}/recoveries", json={}, timeout=30).status_code == 201, 30, 0.2)
    recovered = time.monotonic() - healed

    stack.kill_vendor()
    worst = {name: max(times) for name, times in probes.items()}
    report(
        capsys,
        "slow vendor (30 s, 50 starts waiting): "
        + " ".join(f"{name} max={ms * 1000:.0f}ms" for name, ms in worst.items())
        + f" starts={sorted({code for code, _ in answers})} slowest_start={max(t for _, t in answers):.1f}s"
        + f" recovery={recovered:.1f}s",
    )
    for name, times in probes.items():
        assert max(times) < 0.1, (name, times)
    assert len(answers) == 50 and {code for code, _ in answers} == {503}
    assert max(elapsed for _, elapsed in answers) < 10 + 3  # RECOVERY_START_TIMEOUT and a margin
    assert statistics.median(probes["readyz"]) < 0.05
    assert recovered < 5


def test_a_full_redis_is_refused_at_the_door_and_drained_once_room_is_made(
    processes: Processes, tmp_path: Path, postgres_url: str, capsys: Any
) -> None:
    need_redis_server()
    redis_server = RedisServer(free_port(), tmp_path, maxmemory="32mb")
    redis_server.start()
    try:
        stack = Stack(processes, tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_server.url).start()
        started = [stack.start_recovery() for _ in range(5)]
        filler = redis_server.fill()
        ready = requests.get(f"{stack.base}/readyz", timeout=10)
        assert (ready.status_code, ready.json()["failed"]) == (503, ["broker"])
        for _, session_id in started:
            stack.finish(session_id)
        refused = wait_until(lambda: all(503 in stack.deliveries(s) for _, s in started), 20, 0.2)
        assert refused, [stack.deliveries(s) for _, s in started]
        assert all(stack.status(attempt_id) == "pending" for attempt_id, _ in started)

        redis_server.make_room()
        room = time.monotonic()
        assert wait_until(lambda: stack.all_decided([a for a, _ in started]), 90, 0.2), processes.logs()
        drained = time.monotonic() - room
        assert {stack.status(attempt_id) for attempt_id, _ in started} == {"approved"}
        assert wait_until(lambda: redis_server.in_flight() == 0, 30)
        assert requests.get(f"{stack.base}/readyz", timeout=10).status_code == 200
        report(capsys, f"full redis ({filler} x 64 KiB filler): 503 at the receiver; drained {drained:.1f}s after room")
    finally:
        processes.stop_all()
        redis_server.stop()


def test_the_receiver_refuses_past_queue_max_messages_before_redis_fills(
    processes: Processes, tmp_path: Path, postgres_url: str, capsys: Any
) -> None:
    need_redis_server()
    redis_server = RedisServer(free_port(), tmp_path)
    redis_server.start()
    try:
        stack = Stack(
            processes, tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_server.url, QUEUE_MAX_MESSAGES="3"
        ).start(worker=False)
        started = [stack.start_recovery() for _ in range(5)]
        for _, session_id in started:
            stack.finish(session_id)
        assert wait_until(lambda: sum(200 in stack.deliveries(s) for _, s in started) == 3, 20, 0.2)
        assert wait_until(lambda: sum(503 in stack.deliveries(s) for _, s in started) == 2, 20, 0.2)
        metrics = requests.get(f"{stack.base}/metrics", timeout=10).text
        assert 'facesign_webhooks_received_total{result="queue_full"}' in metrics
        assert requests.get(f"{stack.base}/readyz", timeout=10).status_code == 200  # full queue, healthy Redis
        stack.start_worker()
        room = time.monotonic()
        assert wait_until(lambda: stack.all_decided([a for a, _ in started]), 90, 0.2), processes.logs()
        report(capsys, f"queue ceiling (3): 2 of 5 refused with 503; all decided {time.monotonic() - room:.1f}s later")
    finally:
        processes.stop_all()
        redis_server.stop()


def test_a_redis_stall_strands_nothing(processes: Processes, tmp_path: Path, postgres_url: str, capsys: Any) -> None:
    """With worker timeouts shorter than the stall (5 s against 7 s, as first reported), fetches time out
    while Redis still moves their messages into the workers' acknowledgement sets."""
    need_redis_server()
    redis_server = RedisServer(free_port(), tmp_path)
    redis_server.start()
    try:
        stack = Stack(
            processes, tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_server.url, WORKER_REDIS_TIMEOUT="5"
        ).start()
        started = [stack.start_recovery() for _ in range(30)]
        stack.faults(latencyMs=400)  # a backlog: 4 worker threads take about 3 s for 30 sessions
        for _, session_id in started:
            stack.finish(session_id)
        assert wait_until(lambda: redis_server.in_flight() >= 10, 10, 0.05)
        stall = threading.Thread(target=redis_server.stall, args=(7.0,))
        stall.start()
        stall.join()
        resumed = time.monotonic()
        attempts = [attempt_id for attempt_id, _ in started]
        assert wait_until(lambda: stack.all_decided(attempts), 60, 0.5), processes.logs()
        assert wait_until(lambda: redis_server.in_flight() == 0 and redis_server.acknowledgements() == 0, 60, 0.5)
        settled = time.monotonic() - resumed
        assert settled < 60
        # A decision whose mail message was lost to the stall left its mail pending: the next pass sends it.
        reconciled = processes.run({**stack.env, "RECONCILE_AFTER": "0"}, "reconcile", "--once")
        assert reconciled.returncode == 0, reconciled.stderr
        assert wait_until(lambda: len(list(stack.mail_dir.glob("*.eml"))) == 30, 30), reconciled.stdout
        logs = (log.read_text(errors="replace") for log in tmp_path.glob("*.log"))
        requeued = sum(text.count("stranded in this worker") for text in logs)
        report(
            capsys,
            f"redis stall (7 s, worker timeout 5 s): all 30 decided and acknowledged {settled:.1f}s after;"
            f" strand sweeps {requeued}; reconcile: {reconciled.stdout.strip()}",
        )
    finally:
        processes.stop_all()
        redis_server.stop()


def test_a_session_finished_in_time_and_decided_late_is_approved(
    processes: Processes, tmp_path: Path, postgres_url: str, capsys: Any
) -> None:
    """ATTEMPT_TTL=5: the person finishes within a second, our workers only come back after the deadline."""
    need_redis_server()
    redis_server = RedisServer(free_port(), tmp_path)
    redis_server.start()
    try:
        stack = Stack(processes, tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_server.url, ATTEMPT_TTL="5")
        stack.start(worker=False)
        created = time.monotonic()
        attempt_id, session_id = stack.start_recovery()
        stack.finish(session_id)
        finished = time.monotonic() - created
        assert wait_until(lambda: 200 in stack.deliveries(session_id), 10, 0.1)
        time.sleep(max(0.0, 5 + 2 - (time.monotonic() - created)))
        assert stack.status(attempt_id) == "pending"  # waiting on us, not told "expired"
        stack.start_worker()
        assert wait_until(lambda: stack.status(attempt_id) != "pending", 60, 0.2), processes.logs()
        decided = time.monotonic() - created
        assert stack.status(attempt_id) == "approved"
        report(capsys, f"late decision (TTL 5 s): finished at +{finished:.1f}s, decided at +{decided:.1f}s: approved")
    finally:
        processes.stop_all()
        redis_server.stop()
