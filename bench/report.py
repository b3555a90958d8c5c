"""The benchmark's table (stdout and bench/results/latest.md) and its plot (bench/results/latest.png)."""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench.audit_scale import AuditScale, audit_lines
from bench.e2e import EndToEnd
from bench.ingest import VARIANTS, IngestRun
from bench.latency import LatencyResults
from bench.stack import MAIL_BACKEND
from bench.workers import MailRun, WorkerRun

TARGET = 0.8  # of threads/latency: the workers' goal at 50 ms


@dataclass(frozen=True)
class Results:
    started: str
    seconds: float
    machine: str
    cores: int
    load_before: str
    load_after: str
    python_speed: tuple[float, float]  # microseconds of procs.python_speed() before and after the run
    generator: str
    ingest: list[IngestRun]  # one row per variant
    workers: list[WorkerRun]
    mail: MailRun | None
    e2e: EndToEnd | None
    round_ratios: list[float]  # receiver / bare in each round, to show the spread
    audit: AuditScale | None = None
    latency: LatencyResults | None = None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.1f} GiB RAM, Linux {platform.release()}"


def versions() -> str:
    names = ("uvicorn", "starlette", "dramatiq", "redis", "sqlalchemy", "psycopg")
    return f"Python {platform.python_version()}, " + ", ".join(f"{n} {version(n)}" for n in names)


def headline(results: Results) -> float | None:
    """The median of the paired rounds' receiver / bare ratios."""
    return statistics.median(results.round_ratios) if results.round_ratios else None


def mean_ratio(results: Results) -> float:
    rates = {r.variant: r.requests_per_second for r in results.ingest}
    return rates["receiver"] / rates["bare"]


def capacity_note(runs: list[WorkerRun], cores: int) -> list[str]:
    """Under the table: the runs whose TARGET x threads/latency, at the machine CPU per decision they
    measured, would keep more cores busy than the machine has."""
    needs = []
    for r in runs:
        asked, ms = TARGET * (r.ideal or 0), r.machine_cpu_ms_per_decision  # decisions/s: none asked at 0 ms
        busy = asked * ms / 1000
        if busy > cores:
            needs.append(f"{r.processes} x {r.threads}: {asked:,.0f}/s x {ms:.1f} ms = {busy:.1f} cores")
    if not needs:
        return []
    return [
        "Machine CPU is every process's busy time per decision: the workers', PostgreSQL's, Redis's, the "
        f"sandbox's and the bench's. At {TARGET} x threads/latency, at the machine CPU per decision they "
        f"measured, these runs would keep more than this machine's {cores} cores busy: " + "; ".join(needs) + ".",
        "",
    ]


def markdown(results: Results) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Run {results.started} in {results.seconds:.0f} s with `make bench`.",
        f"Machine: {results.machine}. {versions()}.",
        f"Load average (1, 5, 15 min) before: {results.load_before}; after: {results.load_after}. "
        "Everything (load generator, servers, Redis, PostgreSQL, sandbox) shares these cores.",
        f"Python speed, `sum(range(1000))` best of 5: {results.python_speed[0]:.1f} µs before the run, "
        f"{results.python_speed[1]:.1f} µs after (smaller is faster; CPU figures scale with it).",
        "",
    ]
    ratio = headline(results)
    if ratio is not None:
        rounds = ", ".join(f"{r:.2f}" for r in results.round_ratios)
        lines += [
            f"**Headline: receiver / bare endpoint throughput = {ratio:.2f}** (median of {len(results.round_ratios)} "
            f"paired rounds: {rounds}; the table's ratio of mean throughputs: {mean_ratio(results):.2f})",
            "",
        ]
    if results.ingest:
        lines += [
            f"## Receiver ingest ({results.generator}, 32 connections, same duration for each)",
            "",
            *(
                []
                if results.generator == "wrk"
                else ["Without wrk the Python load generator is the bottleneck: these ratios say little.", ""]
            ),
            "| variant | requests/s | p50 ms | p99 ms | vs bare | server CPU µs/request | Redis CPU µs/request "
            "| errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        bare = next((r.requests_per_second for r in results.ingest if r.variant == "bare"), None)
        for r in results.ingest:
            share = f"{r.requests_per_second / bare:.2f}" if bare else "-"
            redis_cpu = f"{r.redis_cpu_us:.1f}" if r.redis_cpu_us is not None else "-"
            lines.append(
                f"| {VARIANTS[r.variant]} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                f"| {share} | {r.server_cpu_us:.1f} | {redis_cpu} | {r.errors} |"
            )
        lines += [
            "",
            "CPU per request: the server process's (and the local Redis server's) CPU time during the measured "
            "run, divided by the requests answered in it (medians over the rounds).",
            "",
        ]
    if results.workers:
        lines += [
            "## Worker throughput (`worker --queues sessions`: approved decisions, each queueing its reset email)",
            "",
            "| processes | threads | FaceSign latency | decisions/s | ideal threads/latency | of ideal "
            "| CPU ms/decision | machine CPU ms/decision |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in results.workers:
            ideal = f"{w.ideal:,.0f}" if w.ideal else "-"
            share = f"{w.per_second / w.ideal:.2f}" if w.ideal else "-"
            lines.append(
                f"| {w.processes} | {w.threads} | {w.latency_ms} ms | {w.per_second:,.0f} | {ideal} | {share} "
                f"| {w.cpu_ms_per_decision:.1f} | {w.machine_cpu_ms_per_decision:.1f} |"
            )
        lines += ["", *capacity_note(results.workers, results.cores)]
    if results.mail:
        m = results.mail
        lines += [
            f"Then one `worker --queues mail` process with {m.threads} threads sent the {m.emails:,} reset emails "
            f"those decisions had queued ({MAIL_BACKEND} backend): {m.per_second:,.0f} emails/s, "
            f"**{m.cpu_ms_per_email:.1f} ms CPU per email**.",
            "",
        ]
    if results.e2e:
        e = results.e2e
        lines += [
            "## End to end and memory",
            "",
            f"{e.webhooks:,} signed webhooks posted over {32} connections to the receiver, {e.processes} worker "
            f"processes x {e.threads} threads, sandbox at {e.latency_ms} ms: all answered 200 in "
            f"{e.ingest_seconds:.1f} s; last audit row after **{e.seconds:.1f} s** ({e.per_second:,.0f} decisions/s).",
            "",
            f"Peak RSS (VmHWM): receiver {e.receiver_peak_rss_mib:.0f} MiB; largest worker process "
            f"{e.worker_peak_rss_mib:.0f} MiB.",
            "",
        ]
    if results.audit:
        lines += audit_lines(results.audit)
    if results.latency:
        lines += latency_section(results.latency)
    return "\n".join(lines)


def latency_section(results: LatencyResults) -> list[str]:
    lines = [
        "## Decision latency and FaceSign's budget",
        "",
        "From the receiver's 200 to the decision in the database, idle workers, a finished session per webhook:",
        "",
        "| mode | recoveries | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results.latency:
        lines.append(f"| {r.mode} | {r.recoveries} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.max_ms:.0f} |")
    if results.stream:
        lines += [
            "",
            "FaceSign requests under a realistic webhook stream (three status webhooks per session, 30% twice; "
            "bench/latency.py):",
            "",
            "| FACESIGN_RATE_LIMIT | sessions | decided | GETs/session | requests/session | largest 60 s | 429s "
            "| 503s to POST /recoveries | seconds |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in results.stream:
            lines.append(
                f"| {s.budget} | {s.sessions} | {s.decided} | {s.gets_per_session:.2f} | {s.requests_per_session:.2f} "
                f"| {s.largest_minute} | {s.rate_limited} | {s.refused} | {s.seconds:.0f} |"
            )
    if results.idle:
        i = results.idle
        lines += [
            "",
            f"One idle worker process (two queues and their delay queues) sent Redis "
            f"**{i.round_trips_per_second:.1f} commands/s**; Redis ran {i.commands_per_second:.1f}/s counting those "
            f"inside its scripts ({i.seconds:.0f} s on a Redis of its own).",
        ]
    return [*lines, ""]


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [VARIANTS[r.variant].split(" ", 1)[0] for r in results.ingest]
    left.bar(names, [r.requests_per_second for r in results.ingest], color=["#999", "#2a7", "#c55"][: len(names)])
    left.set_title("Receiver ingest: requests/s (a bare, b receiver, c vendor style)")
    left.set_ylabel("requests/s")
    slow = [w for w in results.workers if w.latency_ms]
    labels = [f"{w.processes}x{w.threads}" for w in slow]
    positions = range(len(slow))
    right.bar([p - 0.2 for p in positions], [w.per_second for w in slow], width=0.4, label="measured", color="#2a7")
    ideal = [w.ideal or 0 for w in slow]
    right.bar([p + 0.2 for p in positions], ideal, width=0.4, label="threads/latency", color="#bbb")
    right.set_xticks(list(positions), labels)
    right.set_title(f"Worker decisions/s at {slow[0].latency_ms if slow else 50} ms (processes x threads)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
