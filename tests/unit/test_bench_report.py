"""The benchmark report: the note under the worker table naming the runs whose 0.8 target is more
than the cores decided with no latency at all, and the machine's Python speed."""

from bench.report import Results, markdown
from bench.workers import WorkerRun


def run(processes: int, threads: int, latency_ms: int, per_second: float) -> WorkerRun:
    return WorkerRun(
        processes, threads, latency_ms, decisions=int(per_second * 10), seconds=10.0, cpu_ms_per_decision=3.0
    )


def report(workers: list[WorkerRun]) -> str:
    return markdown(
        Results(
            started="2026-11-26 12:00 UTC",
            seconds=1.0,
            machine="test",
            load_before="0 0 0",
            load_after="0 0 0",
            generator="wrk",
            ingest=[],
            workers=workers,
            mail=None,
            e2e=None,
            round_ratios=[],
            python_speed=(15.0, 15.0),
        )
    )


def test_the_note_names_the_runs_whose_target_exceeds_the_fastest_run_at_0_ms():
    text = report([run(1, 16, 0, 140), run(2, 4, 0, 190), run(1, 16, 50, 140), run(1, 4, 50, 66), run(2, 8, 50, 150)])
    assert "the most decisions/s of any run was 190 (2 x 4)" in text
    assert "asks for more than that: 256/s of 1 x 16, 256/s of 2 x 8." in text  # not 1 x 4: 64/s


def test_no_note_when_every_target_is_within_reach_or_nothing_ran_at_0_ms():
    assert "asks for more" not in report([run(1, 16, 0, 400), run(1, 16, 50, 250)])
    assert "asks for more" not in report([run(1, 16, 50, 250)])


def test_the_header_gives_the_machines_python_speed_before_and_after():
    assert "15.0 µs before the run, 15.0 µs after" in report([])
