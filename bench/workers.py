"""Worker throughput: decisions/s for processes x threads against the sandbox at 0 and 50 ms latency.

Each configuration runs `facesign-recovery worker --queues sessions` (the deciding workers) as an
operator would, with a warm-up (every thread's first message opens its connections) and a batch
queued behind it in one round trip, and times the batch from the warm-up's last decision until the
batch's last audit row is counted (see run_one). CPU is the worker process tree's user + system
time over the timed batch, divided by its decisions (so it includes Dramatiq's own polling,
enqueueing the reset email and logging); the machine's CPU is every process's busy time over the same
batch (PostgreSQL, Redis, the sandbox and the bench's polling too). At 50 ms, 2 x 8 and 4 x 4 follow:
the same 16 threads spread over more processes (SPREAD). The reset emails those decisions queued are
then sent by one `worker --queues mail` process, timed and measured the same way: each part alone, on
the same cores; the end-to-end benchmark runs them together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from bench import procs
from bench.stack import Stack, wait_until

PROCESSES = (1, 2)
THREADS = (1, 4, 16)
LATENCIES_MS = (0, 50)
# The 16 threads of 1 x 16 spread over more processes, at 50 ms: fewer threads under each GIL. Were one
# process's GIL what holds 1 x 16 back, these would come closer to the ideal; if the shared cores are,
# they would not.
SPREAD = ((2, 8), (4, 4))
SPREAD_LATENCY_MS = 50
MAIL_THREADS = 8


@dataclass(frozen=True)
class WorkerRun:
    processes: int
    threads: int
    latency_ms: int
    decisions: int
    seconds: float
    cpu_ms_per_decision: float
    machine_cpu_ms_per_decision: float  # every process's (procs.machine_busy_seconds)

    @property
    def per_second(self) -> float:
        return self.decisions / self.seconds

    @property
    def ideal(self) -> float | None:
        """`threads / latency`: what the threads could do if waiting on FaceSign were all they did."""
        return self.processes * self.threads * 1000 / self.latency_ms if self.latency_ms else None


def batch_size(processes: int, threads: int, latency_ms: int) -> int:
    """About 6 s of work at the ideal rate (at most 2,000 messages): long enough that the last
    messages' tail, when fewer threads than all have work left, is a small share of the time."""
    if latency_ms == 0:
        return 600
    ideal = processes * threads * 1000 / latency_ms
    return int(min(2000, max(40, ideal * 6)))


def configurations() -> list[tuple[int, int, int]]:
    """(processes, threads, latency in ms) of every run, in the order they run."""
    grid = [(p, t, latency) for latency in LATENCIES_MS for p in PROCESSES for t in THREADS]
    return grid + [(p, t, SPREAD_LATENCY_MS) for p, t in SPREAD]


def batches() -> dict[str, int]:
    """Sessions each run needs: a warm-up of one message per thread, then the timed batch."""
    sizes = {}
    for processes, threads, latency in configurations():
        key = f"{processes}x{threads}@{latency}"
        sizes[f"warm {key}"] = processes * threads
        sizes[key] = batch_size(processes, threads, latency)
    return sizes


@dataclass(frozen=True)
class MailRun:
    threads: int
    emails: int
    seconds: float
    cpu_ms_per_email: float

    @property
    def per_second(self) -> float:
        return self.emails / self.seconds


def worker_argv(processes: int, threads: int, queue: str) -> list[str]:
    argv = [str(procs.BIN / "facesign-recovery"), "worker", "--processes", str(processes)]
    return argv + ["--threads", str(threads), "--queues", queue]


def run_all(stack: Stack, engine: Engine, log: list[str]) -> tuple[list[WorkerRun], MailRun]:
    runs: list[WorkerRun] = []
    for processes, threads, latency in configurations():
        if not runs or runs[-1].latency_ms != latency:
            stack.set_latency(latency)
        runs.append(run_one(stack, engine, processes, threads, latency))
        log.append(f"workers {processes}x{threads} @ {latency} ms: {runs[-1].per_second:.0f}/s")
        print(log[-1], flush=True)
    mail = run_mail(stack, engine)
    log.append(f"mail worker 1x{mail.threads}: {mail.per_second:.0f} emails/s")
    print(log[-1], flush=True)
    return runs, mail


def run_mail(stack: Stack, engine: Engine) -> MailRun:
    """Sends every reset email the decisions above queued (their messages wait in the mail queue);
    timed from the first email sent, so that the worker's start-up is not counted."""
    env = {**stack.env, "dramatiq_prom_port": str(procs.free_port())}
    sent = stack.emails_sent(engine)
    # A mail an earlier part's stopped process left claimed stays so (only a reconciler gives it back,
    # and none runs here): it is not this worker's to send.
    abandoned = stack.emails_unsent(engine) - stack.emails_pending(engine)
    with procs.running(worker_argv(1, MAIL_THREADS, "mail"), env, stack.workdir / "mail-worker.log") as mailer:
        wait_until(lambda: stack.emails_sent(engine) > sent, timeout=60, interval=0.005)
        sent, cpu_before, started = stack.emails_sent(engine), procs.cpu_seconds(mailer), time.perf_counter()
        wait_until(lambda: stack.emails_unsent(engine) <= abandoned, timeout=300, interval=0.01)
        seconds, cpu = time.perf_counter() - started, procs.cpu_seconds(mailer) - cpu_before
        emails = stack.emails_sent(engine) - sent
    return MailRun(MAIL_THREADS, emails, seconds, cpu * 1000 / max(emails, 1))


def run_one(stack: Stack, engine: Engine, processes: int, threads: int, latency: int) -> WorkerRun:
    key = f"{processes}x{threads}@{latency}"
    argv = worker_argv(processes, threads, "sessions")
    env = {**stack.env, "dramatiq_prom_port": str(procs.free_port())}
    done, _ = stack.decisions(engine)
    with procs.running(argv, env, stack.workdir / f"worker-{key}.log") as worker:
        warm, batch = stack.sessions[f"warm {key}"], stack.sessions[key]
        # The batch is queued behind the warm-up, so the workers never run dry in between: an idle
        # Dramatiq consumer polls Redis with a growing backoff (up to dramatiq_worker_timeout, 1 s), and
        # the delay until its next poll is pick-up latency, not throughput. The clock starts when the
        # warm-up's count of decisions is reached and stops at the batch's last: in a steady stream,
        # the time between the k-th and the (k+n)-th decision is n decisions' worth, whichever they are.
        stack.enqueue(warm + batch)
        done += len(warm)
        wait_until(lambda: stack.decisions(engine)[0] >= done, timeout=60, interval=0.002)
        cpu_before, busy_before, started = procs.cpu_seconds(worker), procs.machine_busy_seconds(), time.perf_counter()
        done += len(batch)
        wait_until(lambda: stack.decisions(engine)[0] >= done, timeout=300, interval=0.01)
        seconds = time.perf_counter() - started
        cpu, busy = procs.cpu_seconds(worker) - cpu_before, procs.machine_busy_seconds() - busy_before
    per_decision = 1000 / len(batch)
    return WorkerRun(processes, threads, latency, len(batch), seconds, cpu * per_decision, busy * per_decision)
