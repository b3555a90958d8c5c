"""Decisions in a tenth of a second, and FaceSign's budget (`python -m bench --only latency`).

- Decision latency with idle workers: a signed webhook for a finished session every 0.3 to 0.9 s;
  from the receiver's 200 until the attempt reads decided in the database (what `GET /recoveries/{id}`
  answers), polled every 2 ms; the first four are not timed (each worker process's first decision
  opens its connections). Redis mode (the receiver, `facesign-recovery worker` with its defaults)
  beside embedded mode (`facesign-recovery serve`).
- FaceSign requests per decided session under a realistic webhook stream: recoveries started through
  `POST /recoveries` two a second; each session's `created` webhook at once, its page opened 0.5 to
  1.5 s later (`inProgress`) and the person done 2 to 5 s after that (`complete`), 30% of webhooks
  delivered twice; counted by the sandbox. Once with the default budget, which this stream does not
  reach, and once with 120 a minute, which it exceeds: fetches wait for budget and the webhooks of
  a wait coalesce (and a page told 503 tries again after its Retry-After).
- Idle Redis commands per second of one worker process, on a Redis of its own.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
import redis
from sqlalchemy import Engine, select

from adapters.db.models import RecoveryAttempt
from bench import procs
from bench.ingest import request
from bench.stack import EMAIL, SECRET, Stack, wait_until
from domain.signature import HEADER, sign

RECOVERIES = int(os.environ.get("BENCH_LATENCY_RECOVERIES", "50"))
IDLE_GAP = (0.3, 0.9)  # seconds between webhooks: the workers are idle when each arrives
WARM_UP = 4  # first decisions of each mode, not timed: a worker process's first opens its connections
STREAM_SESSIONS = int(os.environ.get("BENCH_STREAM_SESSIONS", "40"))
STREAM_RATE = 2.0  # recoveries started per second
STREAM_BUDGETS = (900, 120)  # FACESIGN_RATE_LIMIT: the default, and one the stream exceeds
DUPLICATED = 0.3
IDLE_SECONDS = 10.0
MODES = ("redis", "embedded")


@dataclass(frozen=True)
class LatencyRun:
    mode: str
    recoveries: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class StreamRun:
    budget: int  # FACESIGN_RATE_LIMIT
    sessions: int
    decided: int
    gets_per_session: float
    requests_per_session: float  # creates and gets
    largest_minute: int  # the most requests the sandbox received in any 60 s
    rate_limited: int  # 429s the sandbox answered
    refused: int  # POST /recoveries answered 503 (tried again after its Retry-After)
    seconds: float


@dataclass(frozen=True)
class IdleRun:
    seconds: float
    round_trips_per_second: float  # commands the worker process sent
    commands_per_second: float  # commands Redis ran, those inside its scripts included


@dataclass(frozen=True)
class LatencyResults:
    latency: list[LatencyRun]
    stream: list[StreamRun]
    idle: IdleRun | None


def batches() -> dict[str, int]:
    """Finished sessions with pending attempts for the latency runs."""
    return {f"latency {mode}": WARM_UP + RECOVERIES for mode in MODES}


def run_all(stack: Stack, engine: Engine, log: list[str]) -> LatencyResults:
    latency = []
    for mode in MODES:
        latency.append(measure_latency(stack, engine, mode))
        log.append(f"decision latency, {mode}: p50 {latency[-1].p50_ms:.0f} ms, p99 {latency[-1].p99_ms:.0f} ms")
        print(log[-1], flush=True)
    stream = []
    for budget in STREAM_BUDGETS:
        stream.append(measure_stream(stack, engine, budget))
        run = stream[-1]
        log.append(f"stream at a budget of {budget}/min: {run.gets_per_session:.2f} GETs per decided session")
        print(log[-1], flush=True)
    idle = measure_idle(stack)
    if idle is not None:
        log.append(f"idle worker process: {idle.round_trips_per_second:.1f} Redis commands/s")
        print(log[-1], flush=True)
    return LatencyResults(latency, stream, idle)


def _status(engine: Engine, session_id: str) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(select(RecoveryAttempt.status).where(RecoveryAttempt.session_id == session_id))


def _percentile(values: list[float], cut: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[cut - 1]


def measure_latency(stack: Stack, engine: Engine, mode: str) -> LatencyRun:
    stack.clear_queues()
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}/webhooks/facesign"
    rng = random.Random(5)  # noqa: S311 - idle gaps
    delays = []
    with _servers(stack, mode, port):
        time.sleep(2.0)  # every consumer idle
        with httpx.Client(timeout=10) as client:
            for number, session_id in enumerate(stack.sessions[f"latency {mode}"]):
                time.sleep(rng.uniform(*IDLE_GAP))
                body, headers = request(session_id, f"evt_{session_id}")
                answer = client.post(url, content=body, headers=headers)
                answered = time.perf_counter()
                if answer.status_code != 200:
                    raise RuntimeError(f"receiver answered {answer.status_code}")
                while _status(engine, session_id) == "pending":
                    if time.perf_counter() - answered > 30:
                        raise TimeoutError(f"no decision for {session_id} in 30 s")
                    time.sleep(0.002)
                if number >= WARM_UP:  # idle consumers take turns: each process has decided before these
                    delays.append((time.perf_counter() - answered) * 1000)
    return LatencyRun(mode, len(delays), statistics.median(delays), _percentile(delays, 99), max(delays))


@contextmanager
def _servers(stack: Stack, mode: str, port: int, extra: dict[str, str] | None = None) -> Iterator[None]:
    """The receiver and the workers of one mode, stopped on exit."""
    with ExitStack() as running:
        if mode == "embedded":
            # No reconciler pass may touch the other benchmarks' pending attempts or mail.
            env = {**stack.env, "REDIS_URL": "", "RECONCILE_AFTER": "86400", "RECONCILE_INTERVAL": "86400"}
            argv = [str(procs.BIN / "facesign-recovery"), "serve", "--port", str(port)]
            running.enter_context(procs.running(argv, {**env, **(extra or {})}, stack.workdir / "serve.log", port))
        else:
            env = {**stack.env, **(extra or {})}
            receiver = procs.uvicorn("receiver.app:app", port)
            running.enter_context(procs.running(receiver, env, stack.workdir / f"{mode}-receiver.log", port))
            worker = [str(procs.BIN / "facesign-recovery"), "worker"]  # its defaults: 2 processes x 8 threads
            worker_env = {**env, "dramatiq_prom_port": str(procs.free_port())}
            running.enter_context(procs.running(worker, worker_env, stack.workdir / f"{mode}-worker.log"))
        yield


def measure_stream(stack: Stack, engine: Engine, budget: int) -> StreamRun:
    stack.clear_queues()  # the budget's window too: the previous run's requests are not this one's
    port, sandbox_port = procs.free_port(), procs.free_port()
    base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    sandbox_env = {**stack.env, "PUBLIC_BASE_URL": base}
    argv = [str(procs.BIN / "facesign-recovery"), "sandbox", "--port", str(sandbox_port)]
    extra = {"FACESIGN_API_URL": sandbox, "FACESIGN_RATE_LIMIT": str(budget), "RECOVERIES_PER_MINUTE": "1000000"}
    with procs.running(argv, sandbox_env, stack.workdir / f"stream-sandbox-{budget}.log", sandbox_port):
        httpx.post(f"{sandbox}/sandbox/enrollments", json={"email": EMAIL, "name": "Bench User"}).raise_for_status()
        httpx.post(f"{sandbox}/sandbox/faults", json={"duplicateRate": DUPLICATED, "seed": 3}).raise_for_status()
        with _servers(stack, f"stream-{budget}", port, extra):
            started = time.perf_counter()
            sessions, refused = _stream(base, sandbox)
            decided = lambda: sum(_status(engine, s) not in (None, "pending") for s in sessions)  # noqa: E731
            wait_until(lambda: decided() == len(sessions), timeout=240, interval=0.2)
            seconds = time.perf_counter() - started
        stats = httpx.get(f"{sandbox}/sandbox/stats").json()
    counts = [stats["sessions"].get(s, {"create": 0, "get": 0}) for s in sessions]
    gets = sum(c["get"] for c in counts)
    done = decided()
    return StreamRun(
        budget,
        len(sessions),
        done,
        gets / max(done, 1),
        (gets + sum(c["create"] for c in counts)) / max(done, 1),
        stats["maxRequestsIn60s"],
        stats["rateLimited"],
        refused,
        seconds,
    )


def _stream(base: str, sandbox: str) -> tuple[list[str], int]:
    """Start STREAM_SESSIONS recoveries and play each session's three webhooks; the session ids, and
    how many times `POST /recoveries` answered 503."""
    sessions: list[str] = []
    refused = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def one(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - think times and duplicates
        try:
            with httpx.Client(timeout=30) as client:
                created = client.post(f"{base}/recoveries", json={"type": "forgot_password"})
                while created.status_code == 503:  # as the recovery page does: again after Retry-After
                    with lock:
                        refused[0] += 1
                    time.sleep(int(created.headers["Retry-After"]))
                    created = client.post(f"{base}/recoveries", json={"type": "forgot_password"})
                created.raise_for_status()
                session_id = created.json()["url"].rstrip("/").rsplit("/", 1)[-1]
                with lock:
                    sessions.append(session_id)
                _created_webhook(client, base, session_id, copies=2 if rng.random() < DUPLICATED else 1)
                time.sleep(rng.uniform(0.5, 1.5))
                client.get(f"{sandbox}/s/{session_id}").raise_for_status()
                time.sleep(rng.uniform(2, 5))
                done = client.post(f"{sandbox}/sandbox/sessions/{session_id}/complete", json={"identity": EMAIL})
                done.raise_for_status()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = []
    for index in range(STREAM_SESSIONS):
        threads.append(threading.Thread(target=one, args=(index,)))
        threads[-1].start()
        time.sleep(1 / STREAM_RATE)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sessions, refused[0]


def _created_webhook(client: httpx.Client, base: str, session_id: str, copies: int) -> None:
    body = json.dumps(
        {"id": f"evt_created_{session_id}", "type": "session.status", "createdAt": 0, "sessionId": session_id}
    ).encode()
    headers = {HEADER: sign(SECRET, int(time.time()), body), "Content-Type": "application/json"}
    for _ in range(copies):
        client.post(f"{base}/webhooks/facesign", content=body, headers=headers).raise_for_status()


def measure_idle(stack: Stack) -> IdleRun | None:
    """One idle `worker --processes 1` against a redis-server of its own; None without redis-server."""
    if shutil.which("redis-server") is None:
        return None
    port = procs.free_port()
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    url = f"redis://127.0.0.1:{port}/0"
    env = {**stack.env, "REDIS_URL": url, "dramatiq_prom_port": str(procs.free_port())}
    worker = [str(procs.BIN / "facesign-recovery"), "worker", "--processes", "1"]
    with (
        procs.running(server, {}, stack.workdir / "idle-redis.log", port),
        procs.running(worker, env, stack.workdir / "idle-worker.log"),
    ):
        client = redis.Redis.from_url(url)
        time.sleep(3.0)  # booted, queues declared, every consumer idle
        client.config_resetstat()
        time.sleep(IDLE_SECONDS)
        calls = {name: int(stats["calls"]) for name, stats in client.info("commandstats").items()}
        client.close()
    round_trips = calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_blpop", 0)
    return IdleRun(IDLE_SECONDS, round_trips / IDLE_SECONDS, (sum(calls.values()) - 1) / IDLE_SECONDS)
