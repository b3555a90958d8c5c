"""The benchmark report: the note under the worker table naming the runs whose 0.8 target would need
more cores than the machine has, and the machine's Python speed."""

from bench.report import Results, markdown
from bench.workers import WorkerRun


def run(processes: int, threads: int, latency_ms: int, machine_ms: float) -> WorkerRun:
    return WorkerRun(
        processes, threads, latency_ms, 1000, 10.0, cpu_ms_per_decision=3.0, machine_cpu_ms_per_decision=machine_ms
    )


def report(workers: list[WorkerRun]) -> str:
    return markdown(
        Results(
            started="2026-11-26 12:00 UTC",
            seconds=1.0,
            machine="test",
            cores=2,
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


def test_the_note_names_the_runs_whose_target_would_keep_more_cores_busy_than_the_machine_has():
    text = report([run(1, 16, 0, 9.0), run(1, 16, 50, 10.0), run(1, 4, 50, 12.0), run(2, 8, 50, 7.0)])
    # 1 x 16: 256/s x 10 ms = 2.56 cores; 1 x 4: 64/s x 12 ms = 0.77; 2 x 8: 256/s x 7 ms = 1.79; 0 ms: no target
    assert "more than this machine's 2 cores busy: 1 x 16: 256/s x 10.0 ms = 2.6 cores." in text
    assert "| 1 | 16 | 50 ms | 100 | 320 | 0.31 | 3.0 | 10.0 |" in text


def test_no_note_when_every_target_fits_the_cores():
    assert "cores busy" not in report([run(1, 16, 0, 20.0), run(1, 16, 50, 7.5), run(1, 4, 50, 20.0)])


def test_the_header_gives_the_machines_python_speed_before_and_after():
    assert "15.0 µs before the run, 15.0 µs after" in report([])
