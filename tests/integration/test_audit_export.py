"""Exports stream: the peak memory of `audit query` / `audit export` does not grow with the row count.

The 200,000-row figure in the README ("Exports and retention") was measured by hand the same way.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI, base_env
from tests.fakes import migrated
from tests.integration.test_audit_rows import fill

SMALL, LARGE = 20_000, 60_000
# 40,000 more rows held in memory as records would cost well over 50 MB; streaming costs nothing per row.
GROWTH_BOUND_KIB = 12 * 1024


# The child's own high-water mark. Not wait4()'s ru_maxrss: Linux carries the forking parent's (pytest's) peak
# across exec into it, so that figure would grow with this test process rather than with the export.
PROBE = """
import atexit, os, sys

def report():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(peak)

atexit.register(report)
from cli import main
sys.argv = ["facesign-recovery", *sys.argv[1:]]
main()
"""


def peak_rss_kib(database_url: str, *args: str, output: Path) -> int:
    """Run the CLI and return its peak resident set size in KiB."""
    peak_file = output.with_suffix(".peak")
    env = base_env(DATABASE_URL=database_url, PEAK_FILE=str(peak_file))
    with output.open("wb") as out:
        done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, stdout=out, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return int(peak_file.read_text())


def filled(database_url: str, rows: int) -> str:
    engine = migrated(database_url).engine
    fill(engine, rows)
    engine.dispose()
    return database_url


@pytest.fixture(scope="module")
def sqlite_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """One database per size, filled once for every command measured on it."""
    folder = tmp_path_factory.mktemp("logs")
    return {rows: filled(f"sqlite:///{folder}/audit-{rows}.db", rows) for rows in (SMALL, LARGE)}


@pytest.mark.parametrize(
    "command",
    [
        ("audit", "query", "--format", "csv"),
        ("audit", "export", "--before", "2100-01-01", "--format", "jsonl"),
    ],
    ids=["query-csv", "export-jsonl"],
)
def test_export_memory_does_not_grow_with_rows(
    sqlite_logs: dict[int, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    peaks = {}
    for rows, url in sqlite_logs.items():
        output = tmp_path / f"out-{rows}"
        peaks[rows] = peak_rss_kib(url, *command, output=output)
        lines = output.read_text().splitlines()
        assert len(lines) == rows + (1 if "csv" in command else 0)
    growth = peaks[LARGE] - peaks[SMALL]
    assert growth < GROWTH_BOUND_KIB, f"peak RSS grew by {growth} KiB from {SMALL} to {LARGE} rows: {peaks}"


def test_postgres_streams_too(postgres_url: str, tmp_path: Path) -> None:
    peaks = {}
    for rows in (SMALL, LARGE - SMALL):  # the second fill makes the total LARGE
        filled(postgres_url, rows)
        output = tmp_path / f"out-{rows}.csv"
        peaks[rows] = peak_rss_kib(postgres_url, "audit", "query", "--format", "csv", output=output)
    with output.open() as handle:
        assert sum(1 for _ in csv.reader(handle)) == LARGE + 1
    growth = peaks[LARGE - SMALL] - peaks[SMALL]
    assert growth < GROWTH_BOUND_KIB, f"peak RSS grew by {growth} KiB from {SMALL} to {LARGE} rows: {peaks}"


def test_an_export_is_an_archive_that_verifies_on_its_own(tmp_path: Path) -> None:
    url = filled(f"sqlite:///{tmp_path}/audit.db", 50)  # one row per second from 2026-11-01T00:00:00Z
    archive = tmp_path / "archive.jsonl"
    env = base_env(DATABASE_URL=url)
    done = subprocess.run(
        [CLI, "audit", "export", "--before", "2026-11-01T00:00:30Z", "--output", str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(1, 31))
    anchor = done.stderr.strip().rsplit(" ", 1)[-1]
    assert anchor == f"30:{records[-1]['hash']}"
    check = subprocess.run(
        [CLI, "audit", "verify", "--file", str(archive), "--anchor", anchor], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.startswith("30 rows"), check.stderr
    records[10]["outcome"] = "approved"
    archive.write_text("".join(json.dumps(r) + "\n" for r in records))
    check = subprocess.run([CLI, "audit", "verify", "--file", str(archive)], env=env, capture_output=True, text=True)
    assert check.returncode == 1 and "row 11" in check.stderr
