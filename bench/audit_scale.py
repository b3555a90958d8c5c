"""The audit log at scale: a million chained rows on PostgreSQL, then what auditors wait for.

Fills a fresh database with ROWS decisions spread over the last year (bench/audit_rows.py, by COPY),
verifies the whole chain in process (the code `audit verify` runs; this also notes the checkpoint the
dashboard starts from), appends NEW_ROWS more, then starts `serve` (Redis mode: the receiver alone,
as in production) and times over HTTP the dashboard's data (`/audit/panel`) for its default window and
for the widest it allows (all rows), and one decision's page; last, the peak memory of exports of
EXPORT_SMALL rows and of every row (`audit query --format csv` and `GET /audit/export`).

Goals: dashboard ≤ 1 s and single decision ≤ 200 ms at 1,000,000 rows; full verify ≥ 50,000 rows/s;
export memory flat (the same peak for 100,000 rows as for all of them).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from adapters.db.engine import Database
from adapters.db.migrate import upgrade
from bench import procs
from bench.audit_rows import fill
from bench.stack import REDIS_URL, SECRET, database
from usecases.audit import create_auditor
from usecases.audit_verification import process_name, verify_full

ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
NEW_ROWS = 1000  # appended after the checkpoint: what the dashboard's incremental check reads
EXPORT_SMALL = 100_000
LOADS = 5  # timed dashboard loads per window, after one untimed
DECISIONS = 20  # timed single-decision requests


@dataclass(frozen=True)
class AuditScale:
    rows: int
    fill_seconds: float
    verified_rows: int  # the full verification's rows (before the last NEW_ROWS were appended)
    verify_seconds: float
    dashboard_default_ms: float  # median: the last 14 days (the dashboard's default window)
    dashboard_default_rows: float  # decisions in that window
    dashboard_all_ms: float  # median: a window holding every row
    decision_ms: float  # median of GET /audit/decisions/{id}
    decision_page_ms: float  # median of the dashboard's fragment for one decision
    cli_export_small_mib: float  # peak RSS of `audit query --format csv --limit EXPORT_SMALL`
    cli_export_all_mib: float  # the same for every row
    cli_export_all_seconds: float
    server_before_export_mib: float  # the receiver's VmHWM before and after `GET /audit/export` of every row
    server_after_export_mib: float
    load: str  # `uptime`'s load averages when this part started
    python_speed: float

    @property
    def verify_rows_per_second(self) -> float:
        return self.verified_rows / self.verify_seconds


def median_ms(call: object, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def peak_child_mib(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one child process, its output thrown away."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen(argv, env={**os.environ, **env}, stdout=sink, stderr=subprocess.PIPE)  # noqa: S603
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{argv[1:]} failed: {child.stderr.read().decode()[-500:] if child.stderr else ''}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def fill_year(db: Database, log: list[str]) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    old = ROWS - NEW_ROWS
    fill(db.engine, old, start=now - timedelta(days=365), step=timedelta(days=365) / old)
    seconds = time.perf_counter() - started
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # What autovacuum does to a long-lived table: the visibility map lets the counts come from the indexes.
        connection.execute(text("VACUUM ANALYZE decisions"))
        connection.execute(text("VACUUM ANALYZE recovery_attempts"))
    log.append(f"audit: filled {old:,} rows in {seconds:.0f} s")
    return seconds


def run(log: list[str]) -> AuditScale:
    load, speed = procs.load_average(), procs.python_speed()
    with database() as url:
        db = Database.connect(url)
        upgrade(db)
        fill_seconds = fill_year(db, log)
        full = verify_full(db, process_name("bench"))
        assert full.verdict.ok, full.verdict.describe()
        fill(db.engine, NEW_ROWS, start=datetime.now(UTC) - timedelta(minutes=30), step=timedelta(seconds=1))
        token = create_auditor(db, "bench")
        db.dispose()
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "FACESIGN_API_KEY": "bench",
            "FACESIGN_WEBHOOK_SECRET": SECRET,
            "AUDIT_PSEUDONYM_KEY": "bench",
        }
        port = procs.free_port()
        argv = [str(procs.BIN / "facesign-recovery"), "serve", "--port", str(port)]
        with procs.running(argv, env, Path(os.devnull), port=port) as server:
            figures = _over_http(f"http://127.0.0.1:{port}", token, server.pid)
        cli = [str(procs.BIN / "facesign-recovery"), "audit", "query", "--format", "csv"]
        small, _ = peak_child_mib([*cli, "--limit", str(EXPORT_SMALL)], env)
        everything, export_seconds = peak_child_mib(cli, env)
    result = AuditScale(
        rows=ROWS,
        fill_seconds=fill_seconds,
        verified_rows=full.verdict.count,
        verify_seconds=full.seconds,
        cli_export_small_mib=small,
        cli_export_all_mib=everything,
        cli_export_all_seconds=export_seconds,
        load=load,
        python_speed=speed,
        **figures,
    )
    log.append(f"audit: {result}")
    return result


def _over_http(base: str, token: str, pid: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    today = datetime.now(UTC).date()
    whole = {"since": (today - timedelta(days=365)).isoformat(), "until": (today + timedelta(days=1)).isoformat()}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:

        def get(path: str, **params: str) -> httpx.Response:
            answer = client.get(path, params=params)
            answer.raise_for_status()
            return answer

        first = get("/audit/panel")
        figures: dict[str, float] = {"dashboard_default_rows": int(first.text.split('id="total">')[1].split("<")[0])}
        figures["dashboard_default_ms"] = median_ms(lambda: get("/audit/panel"), LOADS)
        get("/audit/panel", **whole)
        figures["dashboard_all_ms"] = median_ms(lambda: get("/audit/panel", **whole), LOADS)
        ids = iter(random.sample(range(1, ROWS - NEW_ROWS), 2 * DECISIONS + 2))  # noqa: S311
        get(f"/audit/decisions/{next(ids)}")
        figures["decision_ms"] = median_ms(lambda: get(f"/audit/decisions/{next(ids)}"), DECISIONS)
        get(f"/audit/panel/decisions/{next(ids)}")
        figures["decision_page_ms"] = median_ms(lambda: get(f"/audit/panel/decisions/{next(ids)}"), DECISIONS)
        figures["server_before_export_mib"] = procs.peak_rss_mib(pid)
        with client.stream("GET", "/audit/export", params={"format": "jsonl"}) as answer:
            for _ in answer.iter_bytes():
                pass
        figures["server_after_export_mib"] = procs.peak_rss_mib(pid)
    return figures


def audit_lines(a: AuditScale) -> list[str]:
    """This part's section of bench/results/latest.md."""

    def goal(value: float, limit: float, below: bool = True) -> str:
        return "met" if (value <= limit if below else value >= limit) else "**missed**"

    return [
        "## The audit log at scale (`python -m bench --only audit`)",
        "",
        f"{a.rows:,} chained rows on PostgreSQL over the last year (filled by COPY in {a.fill_seconds:.0f} s), "
        f"a full verification's checkpoint, then {NEW_ROWS:,} rows after it. Load averages when this part started: "
        f"{a.load}; Python speed {a.python_speed:.1f} µs.",
        "",
        "| what | figure | goal |",
        "|---|---:|---|",
        f"| `audit verify` in full | {a.verify_rows_per_second:,.0f} rows/s "
        f"({a.verified_rows:,} in {a.verify_seconds:.1f} s) "
        f"| ≥ 50,000 rows/s: {goal(a.verify_rows_per_second, 50_000, below=False)} |",
        f"| dashboard data, default window (last 14 days, {a.dashboard_default_rows:,.0f} decisions), warm checkpoint "
        f"| {a.dashboard_default_ms:,.0f} ms | ≤ 1 s: {goal(a.dashboard_default_ms, 1000)} |",
        f"| dashboard data, widest window (366 days: every row) | {a.dashboard_all_ms:,.0f} ms "
        f"| ≤ 1 s: {goal(a.dashboard_all_ms, 1000)} |",
        f"| one decision, `GET /audit/decisions/{{id}}` | {a.decision_ms:,.1f} ms "
        f"| ≤ 200 ms: {goal(a.decision_ms, 200)} |",
        f"| one decision, the dashboard's page | {a.decision_page_ms:,.1f} ms "
        f"| ≤ 200 ms: {goal(a.decision_page_ms, 200)} |",
        f"| `audit query --format csv`, peak RSS: {EXPORT_SMALL:,} rows / every row | {a.cli_export_small_mib:.0f} / "
        f"{a.cli_export_all_mib:.0f} MiB ({a.cli_export_all_seconds:.0f} s for every row) | flat |",
        f"| `GET /audit/export` of every row: the receiver's peak RSS before / after "
        f"| {a.server_before_export_mib:.0f} / {a.server_after_export_mib:.0f} MiB | flat |",
        "",
    ]
