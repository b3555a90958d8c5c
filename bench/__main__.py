"""`python -m bench` (`make bench`): every benchmark, one table, bench/results/latest.md and latest.png."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy.exc import OperationalError

from adapters.db.engine import make_engine
from bench import audit_scale, e2e, ingest, latency, load, procs, report, workers
from bench.stack import POSTGRES_ADMIN_URL, REDIS_URL, stack

RESULTS = Path(__file__).resolve().parent / "results"


def unreachable_services() -> str | None:
    admin = make_engine(POSTGRES_ADMIN_URL)
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        with admin.connect():
            return None
    except (redis.RedisError, OperationalError) as exc:
        return str(exc).splitlines()[0]
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parts_all = ("latency", "ingest", "workers", "e2e", "audit")
    parser.add_argument("--only", choices=parts_all, action="append", help="run only these parts")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for latest.md and latest.png")
    args = parser.parse_args(argv)
    parts = set(args.only or parts_all)
    started, clock, load_before = datetime.now(UTC), time.perf_counter(), procs.load_average()
    speed_before = procs.python_speed()
    batches = {"ingest": 1}
    if "workers" in parts:
        batches.update(workers.batches())
    if "e2e" in parts:
        batches.update({"warm e2e": e2e.PROCESSES * e2e.THREADS, "e2e": e2e.WEBHOOKS})
    if "latency" in parts:
        batches.update(latency.batches())
    problem = unreachable_services()
    if problem:
        print(f"bench: needs Redis ({REDIS_URL}) and PostgreSQL ({POSTGRES_ADMIN_URL}): {problem}", file=sys.stderr)
        return 1
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="facesign-bench-") as workdir, stack(batches, Path(workdir)) as services:
        engine = make_engine(services.database_url)
        try:
            # First: with no other part's pending mail or queued messages around its idle workers.
            latency_results = latency.run_all(services, engine, log) if "latency" in parts else None
            ingest_runs = ingest.run_all(services, log) if "ingest" in parts else []
            worker_runs, mail_run = workers.run_all(services, engine, log) if "workers" in parts else ([], None)
            end_to_end = e2e.run(services, engine, log) if "e2e" in parts else None
            audit_run = audit_scale.run(log) if "audit" in parts else None
        except Exception:
            print(f"benchmark failed; process logs were in {workdir}:", file=sys.stderr)
            for name in sorted(Path(workdir).glob("*.log")):
                print(
                    f"--- {name.name} (last lines)\n" + "\n".join(name.read_text().splitlines()[-15:]), file=sys.stderr
                )
            raise
        finally:
            engine.dispose()
    results = report.Results(
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        seconds=time.perf_counter() - clock,
        machine=report.machine(),
        cores=os.cpu_count() or 1,
        load_before=load_before,
        load_after=procs.load_average(),
        python_speed=(speed_before, procs.python_speed()),
        generator=load.generator(),
        ingest=ingest.summary(ingest_runs),
        workers=worker_runs,
        mail=mail_run,
        e2e=end_to_end,
        round_ratios=ingest.round_ratios(ingest_runs),
        audit=audit_run,
        latency=latency_results,
    )
    text = report.markdown(results)
    print("\n" + text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.md").write_text(text + "\n")
    raw = {"ingest_runs": [asdict(r) for r in ingest_runs], "workers": [asdict(w) for w in worker_runs]}
    raw["mail"] = asdict(mail_run) if mail_run else None
    raw["e2e"] = asdict(end_to_end) if end_to_end else None
    raw["audit"] = asdict(audit_run) if audit_run else None
    raw["latency"] = asdict(latency_results) if latency_results else None
    (args.output / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
    report.plot(results, args.output / "latest.png")
    print(f"\nwrote {args.output / 'latest.md'} and {args.output / 'latest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
