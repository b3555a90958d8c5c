"""Pieces of the fault-injection scenario: a Redis of our own, the chaos threads, the plan and the checks."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from adapters.queue.names import MAIL_QUEUE, NAMESPACE, SESSIONS_QUEUE
from domain.signature import HEADER, sign
from tests.e2e.conftest import Processes

SECRET = "whsec_chaos"
APP_SECRET = "whsec_" + base64.b64encode(b"chaos-application-events-secret!").decode()
LOCAL_USERS = 20
STRANGERS = 3  # enrolled at the vendor, unknown to us

# (choices sent to the sandbox, expected outcome, expected reason); index = recovery number % 10.
PLAN: list[tuple[dict[str, Any], str, str]] = [
    *[({"identity": "user", "liveness": "live"}, "approved", "verified")] * 5,
    ({"identity": "unknown"}, "denied", "face_not_recognized"),
    ({"identity": "user", "liveness": "deepfake"}, "denied", "deepfake_detected"),
    ({"identity": "none"}, "denied", "no_face"),
    ({"status": "incomplete"}, "denied", "session_not_complete"),
    ({"identity": "stranger", "liveness": "live"}, "denied", "matched_face_has_no_local_user"),
]


def user_email(index: int) -> str:
    return f"user{index}@example.com"


def stranger_email(index: int) -> str:
    return f"stranger{index}@example.org"


def choices_for(number: int) -> tuple[dict[str, Any], str, str]:
    choices, outcome, reason = PLAN[number % len(PLAN)]
    picked = dict(choices)
    if picked.get("identity") == "user":
        picked["identity"] = user_email(number % LOCAL_USERS)
    elif picked.get("identity") == "stranger":
        picked["identity"] = stranger_email(number % STRANGERS)
    return picked, outcome, reason


class RedisServer:
    """`redis-server` on its own port without persistence: a restart loses everything, as the scenario wants.
    `maxmemory` (e.g. "16mb") with `noeviction`, as production runs it: full means writes are refused."""

    def __init__(self, port: int, workdir: Path, maxmemory: str | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.maxmemory = maxmemory
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.maxmemory:
            argv += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen([*argv, "--daemonize", "no"], cwd=self.workdir, stdout=log, stderr=log)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stall(self, seconds: float) -> None:
        """Redis stops answering (SIGSTOP) for `seconds`: connections stay open, commands wait, then run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)

    def fill(self) -> int:
        """Write filler until Redis refuses writes (OOM); returns how many filler keys it took.

        Redis sits just under its limit once the writer's buffers are freed, taking a few writes more
        each time; the limit is then set a little under what is used, so that it stays full."""
        client = redis.Redis(port=self.port, socket_timeout=5)
        count = 0
        try:
            while True:
                client.set(f"filler:{count}", b"x" * 65536)
                count += 1
        except redis.OutOfMemoryError:
            pass
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 256 * 1024)
        return count

    def make_room(self) -> None:
        client = redis.Redis(port=self.port, socket_timeout=5)
        for key in client.scan_iter("filler:*", count=1000):
            client.delete(key)

    def full_for(self, seconds: float) -> None:
        """Full for a while: the limit set just under what Redis uses (noeviction refuses every write), then lifted."""
        client = redis.Redis(port=self.port, socket_timeout=5)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", max(1, int(client.info("memory")["used_memory"]) - 64 * 1024))
        try:
            time.sleep(seconds)
        finally:
            client.config_set("maxmemory", 0)

    def acknowledgements(self) -> int:
        """Message ids in any worker's acknowledgement sets: fetched and not yet acknowledged."""
        client = redis.Redis(port=self.port, socket_timeout=2)
        return sum(int(client.scard(key)) for key in client.scan_iter(f"{NAMESPACE}:__acks__.*"))

    def restart_empty(self) -> None:
        self.crash()
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def in_flight(self) -> int:
        """Messages the broker still holds: queued, delayed or fetched but not acked."""
        client = redis.Redis(port=self.port, socket_timeout=2)
        keys = [f"{NAMESPACE}:{q}{suffix}.msgs" for q in (SESSIONS_QUEUE, MAIL_QUEUE) for suffix in ("", ".DQ")]
        return sum(int(client.hlen(key)) for key in keys)


@dataclass
class Workers:
    """Two worker processes; `victim` is SIGKILLed (whole process group) and restarted by `kill_and_restart`."""

    processes: Processes
    env: dict[str, str]
    ports: Callable[[], int]
    kills: int = 0
    generation: int = 0
    victim: subprocess.Popen[bytes] | None = None

    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.metrics_ports[name] = self.ports()
        env = {
            **self.env,
            "dramatiq_prom_host": "127.0.0.1",
            "dramatiq_prom_port": str(self.metrics_ports[name]),
            "dramatiq_prom_db": str(self._prom_dir(name)),
        }
        return self.processes.start(name, env, "worker", "--processes", "1", "--threads", "4")

    def metrics(self, name: str = "worker-steady") -> str:
        """The text Dramatiq's Prometheus middleware exposes for that worker's processes."""
        return requests.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=5).text

    def _prom_dir(self, name: str) -> Path:
        path = self.processes.workdir / f"prom-{name}"
        path.mkdir(exist_ok=True)
        return path

    def start_both(self) -> subprocess.Popen[bytes]:
        steady = self.start("worker-steady")
        self.victim = self.start(f"worker-victim-{self.generation}")
        return steady

    def kill_and_restart(self) -> None:
        assert self.victim is not None
        os.killpg(self.victim.pid, signal.SIGKILL)
        self.victim.wait(timeout=10)
        self.kills += 1
        self.generation += 1
        self.victim = self.start(f"worker-victim-{self.generation}")


@dataclass
class Chaos:
    """Background faults that run while the load runs; `stop()` ends them and waits."""

    sandbox: str
    workers: Workers
    kill_every: float = 3.0
    flicker_every: float = 2.0
    flicker_for: float = 0.1
    slow_ms: int = 1500
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    vendor_lock: threading.Lock = field(default_factory=threading.Lock)  # one latency knob, two users
    events: list[str] = field(default_factory=list)

    def later(self, name: str, fault: Callable[[], None]) -> None:
        """Run a one-off fault in the background, alongside the load; `stop()` waits for it."""
        thread = threading.Thread(target=self._guard(fault), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        self.events.append(name)

    def slow_vendor(self, seconds: float, latency_ms: int = 5000) -> None:
        """Every FaceSign answer slower than the client's timeout for a while (what a 30 s vendor does)."""
        faults = f"{self.sandbox}/sandbox/faults"
        with self.vendor_lock:
            requests.post(faults, json={"latencyMs": latency_ms}, timeout=5)
            time.sleep(seconds)
            requests.post(faults, json={"latencyMs": 0}, timeout=5)

    def start(self) -> None:
        for target in (self._killer, self._flicker):
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        requests.post(f"{self.sandbox}/sandbox/faults", json={"latencyMs": 0}, timeout=5)
        if self.errors:
            raise self.errors[0]

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # surfaced by stop()
                self.errors.append(exc)

        return run

    def _killer(self) -> None:
        while not self.stop_event.wait(self.kill_every):
            self.workers.kill_and_restart()

    def _flicker(self) -> None:
        # The sandbox's latency knob applies to every answer while set: switching it on for 5% of the
        # time makes about 5% of FaceSign answers slower than the client's timeout.
        faults = f"{self.sandbox}/sandbox/faults"
        while not self.stop_event.wait(self.flicker_every - self.flicker_for):
            with self.vendor_lock:
                requests.post(faults, json={"latencyMs": self.slow_ms}, timeout=5)
                time.sleep(self.flicker_for)
                requests.post(faults, json={"latencyMs": 0}, timeout=5)


def post_with_retries(url: str, attempts: int = 30, patience: float = 60.0, **kwargs: Any) -> requests.Response:
    """What a client does when the service answers 503 or is briefly unreachable: try again, boundedly
    (at least `attempts` times and for at least `patience` seconds, as a person or FaceSign would)."""
    last: requests.Response | None = None
    error: Exception | None = None
    tries, give_up_at = 0, time.monotonic() + patience
    while tries < attempts or time.monotonic() < give_up_at:
        tries += 1
        try:
            last = requests.post(url, timeout=15, **kwargs)
            if last.status_code < 500:
                return last
        except requests.RequestException as exc:
            error = exc
        time.sleep(0.3)
    answer = last.status_code if last else "no answer"
    raise AssertionError(f"POST {url} kept failing ({tries} tries): {answer}; last error: {error!r}")


def late_duplicate(base: str, session_id: str, event_id: str, rng: random.Random) -> int:
    """The vendor re-delivering an old event hours later: old `createdAt`, fresh signature timestamp."""
    created_ms = int((time.time() - rng.uniform(3600, 4 * 3600)) * 1000)
    body = json.dumps({"id": event_id, "type": "session.status", "createdAt": created_ms, "sessionId": session_id})
    raw = body.encode()
    headers = {HEADER: sign(SECRET, int(time.time()), raw), "Content-Type": "application/json"}
    return post_with_retries(f"{base}/webhooks/facesign", data=raw, headers=headers).status_code


def delivered_event(sandbox: str, session_id: str) -> str | None:
    deliveries = requests.get(f"{sandbox}/sandbox/sessions/{session_id}/deliveries", timeout=5).json()
    return next((d["eventId"] for d in deliveries if d.get("status") == 200), None)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
