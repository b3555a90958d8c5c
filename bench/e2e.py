"""End to end: N signed webhooks into the receiver, 2 worker processes, time until the last audit row;
and the peak resident memory of the receiver and of the worker processes under that load."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from bench import procs
from bench.ingest import request
from bench.stack import Stack, wait_until

WEBHOOKS = int(os.environ.get("BENCH_E2E_WEBHOOKS", "5000"))
PROCESSES = 2
THREADS = 16
LATENCY_MS = 50
CONNECTIONS = 32


@dataclass(frozen=True)
class EndToEnd:
    webhooks: int
    processes: int
    threads: int
    latency_ms: int
    ingest_seconds: float  # until the receiver had answered every webhook
    seconds: float  # until the last audit row
    receiver_peak_rss_mib: float
    worker_peak_rss_mib: float  # the largest of the worker processes

    @property
    def per_second(self) -> float:
        return self.webhooks / self.seconds


async def post_all(url: str, session_ids: list[str]) -> None:
    queue = list(reversed(session_ids))
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def connection() -> None:
            while queue:
                session_id = queue.pop()
                body, headers = request(session_id, f"evt_{session_id}")  # one event each: none is a duplicate
                answer = await client.post(url, content=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"receiver answered {answer.status_code}")

        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))


def run(stack: Stack, engine: Engine, log: list[str]) -> EndToEnd:
    stack.set_latency(LATENCY_MS)
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}/webhooks/facesign"
    worker_argv = [str(procs.BIN / "facesign-recovery"), "worker", "--processes", str(PROCESSES)]
    worker_argv += ["--threads", str(THREADS)]
    worker_env = {**stack.env, "dramatiq_prom_port": str(procs.free_port())}
    done, _ = stack.decisions(engine)
    with (
        procs.running(
            procs.uvicorn("receiver.app:app", port), stack.env, stack.workdir / "e2e-receiver.log", port
        ) as receiver,
        procs.running(worker_argv, worker_env, stack.workdir / "e2e-worker.log") as worker,
    ):
        warm = stack.sessions["warm e2e"]
        asyncio.run(post_all(url, warm))
        done += len(warm)
        wait_until(lambda: stack.decisions(engine)[0] >= done, timeout=120)
        batch = stack.sessions["e2e"]
        started = time.perf_counter()
        asyncio.run(post_all(url, batch))
        ingest_seconds = time.perf_counter() - started
        done += len(batch)
        wait_until(lambda: stack.decisions(engine)[0] >= done, timeout=900, interval=0.02)
        seconds = time.perf_counter() - started
        worker_rss = max(procs.peak_rss_mib(p.pid) for p in worker.children(recursive=True))
        receiver_rss = procs.peak_rss_mib(receiver.pid)
    stack.set_latency(0)
    result = EndToEnd(len(batch), PROCESSES, THREADS, LATENCY_MS, ingest_seconds, seconds, receiver_rss, worker_rss)
    log.append(f"end to end: {result.webhooks} webhooks in {result.seconds:.1f} s")
    print(log[-1], flush=True)
    return result
