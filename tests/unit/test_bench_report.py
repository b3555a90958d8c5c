"""The benchmark report's worker table: each 50 ms row beside the same workers at 0 ms, and the note
naming the configurations whose 0.8 target is more than the cores decided with no latency at all."""

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


def rows(text: str) -> dict[str, str]:
    """Worker table rows by 'processes x threads @ latency', each to its last cell."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0].isdigit():
            found[f"{cells[0]}x{cells[1]}@{cells[2]}"] = cells[7]
    return found


def test_each_50_ms_row_shows_the_same_workers_at_0_ms_as_a_share_of_its_ideal():
    text = report([run(1, 16, 0, 160), run(1, 4, 0, 150), run(1, 16, 50, 140), run(1, 4, 50, 66), run(2, 8, 50, 200)])
    last = rows(text)
    assert last["1x16@0 ms"] == "-"
    assert last["1x16@50 ms"] == "160 (0.50)"  # 160 of 320
    assert last["1x4@50 ms"] == "150 (1.88)"  # 150 of 80
    assert last["2x8@50 ms"] == "-"  # not measured at 0 ms


def test_the_note_names_only_configurations_whose_target_exceeds_their_0_ms_throughput():
    text = report([run(1, 16, 0, 160), run(1, 4, 0, 150), run(1, 16, 50, 140), run(1, 4, 50, 66)])
    assert "1 x 16 made 160/s at 0 ms, against 256/s asked at 50 ms" in text
    assert "1 x 4 made" not in text


def test_no_note_when_every_target_is_within_reach():
    text = report([run(1, 16, 0, 400), run(1, 16, 50, 250)])
    assert rows(text)["1x16@50 ms"] == "400 (1.25)"
    assert "asked at" not in text


def test_the_header_gives_the_machines_python_speed_before_and_after():
    assert "15.0 µs before the run, 15.0 µs after" in report([])
