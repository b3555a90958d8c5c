"""Receiver ingest: the same signed webhook against (a) a bare Starlette endpoint, (b) our receiver with
its durable enqueue to Redis, (c) a synchronous vendor-guide-style handler; same load for each.

(a) and (b) alternate for ROUNDS short rounds so that drift in a shared machine hits both alike; the
headline is the median of the rounds' b/a ratios, which one disturbed round cannot move much (on
the 2-core VM the ratios of single rounds ranged from 0.5 to 1.0 within one run).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass

import psutil

from bench import load, procs
from bench.stack import REDIS_URL, SECRET, Stack
from domain.signature import HEADER, sign

CONNECTIONS = 32
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
WARMUP_SECONDS = 2.0
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
VENDOR_LATENCY_MS = 50


@dataclass(frozen=True)
class IngestRun:
    variant: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us: float  # CPU time of the server process per request answered, µs
    redis_cpu_us: float | None  # Redis's, for the receiver when Redis runs on this machine


VARIANTS = {
    "bare": "(a) bare Starlette endpoint",
    "receiver": "(b) our receiver, durable enqueue to Redis",
    "vendor": f"(c) vendor-guide handler, sandbox at {VENDOR_LATENCY_MS} ms",
}


def request(session_id: str, event_id: str = "evt_bench") -> tuple[bytes, dict[str, str]]:
    """One signed webhook. The ingest rounds repeat one request, so from the second on the receiver
    drops it as a duplicate delivery of its event id: the same work in the receiver's process, one
    SET instead of the enqueue in Redis's."""
    body = {"id": event_id, "type": "session.status", "createdAt": int(time.time() * 1000), "sessionId": session_id}
    raw = json.dumps(body).encode()
    return raw, {HEADER: sign(SECRET, int(time.time()), raw), "Content-Type": "application/json"}


def server(variant: str, stack: Stack, port: int) -> tuple[list[str], dict[str, str]]:
    env = {**stack.env, "REDIS_URL": REDIS_URL, "BENCH_SQLITE_PATH": str(stack.workdir / "vendor.db")}
    if variant == "bare":
        return procs.uvicorn("bench.apps:bare_app", port, factory=True), env
    if variant == "vendor":
        return procs.uvicorn("bench.apps:vendor_style_app", port, factory=True), env
    return procs.uvicorn("receiver.app:app", port), env


def measure(variant: str, stack: Stack, session_id: str) -> IngestRun:
    port = procs.free_port()
    argv, env = server(variant, stack, port)
    url = f"http://127.0.0.1:{port}/webhooks/facesign"
    redis_server = stack.redis_process() if variant == "receiver" else None  # the one variant that uses it
    with procs.running(argv, env, stack.workdir / f"ingest-{variant}.log", port=port) as process:
        body, headers = request(session_id)  # signed now: well inside the 300 s tolerance
        load.run(url, body, headers, CONNECTIONS, WARMUP_SECONDS)
        server_before, redis_before = procs.cpu_seconds(process), _cpu(redis_server)
        result = load.run(url, body, headers, CONNECTIONS, SECONDS)
        server_cpu, redis_cpu = procs.cpu_seconds(process) - server_before, _cpu(redis_server) - redis_before
    stack.clear_queues()
    answered = max(result.requests_per_second * SECONDS, 1.0)
    return IngestRun(
        variant,
        result.requests_per_second,
        result.p50_ms,
        result.p99_ms,
        result.errors,
        server_cpu / answered * 1e6,
        redis_cpu / answered * 1e6 if redis_server is not None else None,
    )


def _cpu(process: psutil.Process | None) -> float:
    return procs.cpu_seconds(process) if process is not None else 0.0


def run_all(stack: Stack, log: list[str]) -> list[IngestRun]:
    session_id = stack.sessions["ingest"][0]
    runs = []
    for _ in range(ROUNDS):
        for variant in ("bare", "receiver"):
            runs.append(measure(variant, stack, session_id))
            log.append(f"ingest {variant}: {runs[-1].requests_per_second:.0f} req/s")
            print(log[-1], flush=True)
    stack.set_latency(VENDOR_LATENCY_MS)
    runs.append(measure("vendor", stack, session_id))
    stack.set_latency(0)
    return runs


def summary(runs: list[IngestRun]) -> list[IngestRun]:
    """One row per variant: mean throughput, median of the latency percentiles and CPU times, errors summed."""
    rows = []
    for variant in VARIANTS:
        mine = [r for r in runs if r.variant == variant]
        if mine:
            rows.append(
                IngestRun(
                    variant,
                    statistics.fmean(r.requests_per_second for r in mine),
                    statistics.median(r.p50_ms for r in mine),
                    statistics.median(r.p99_ms for r in mine),
                    sum(r.errors for r in mine),
                    statistics.median(r.server_cpu_us for r in mine),
                    _median([r.redis_cpu_us for r in mine]),
                )
            )
    return rows


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def round_ratios(runs: list[IngestRun]) -> list[float]:
    """Receiver / bare for each consecutive (bare, receiver) pair."""
    pairs = [r for r in runs if r.variant in ("bare", "receiver")]
    return [b.requests_per_second / a.requests_per_second for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
