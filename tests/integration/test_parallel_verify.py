"""A full verification in ranges over several processes gives the verdict one walk gives: the same first
bad row, the same contradicted anchor."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bench.audit_rows import fill
from domain.audit_verify import Anchor
from tests.fakes import migrated
from tests.integration.test_audit_tamper import delete, edit, move_ids, tamper
from usecases.audit_verification import verify_full

ROOT = Path(__file__).resolve().parents[2]
# Run in a fresh process: ranges are verified by forked processes, which the verifier only forks from a
# process without other threads (a test session may have some).
IN_RANGES = """
import json, sys
from adapters.db.engine import Database
from domain.audit_verify import Anchor
from usecases.parallel_verify import verify_in_ranges
url, anchors, start = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
verdict = verify_in_ranges(
    Database.connect(url), Anchor(*start) if start else None, [Anchor(*a) for a in anchors], processes=3, min_rows=1
)
found = None if verdict is None else [verdict.ok, verdict.count, verdict.head, verdict.bad_id, verdict.problem]
print(json.dumps(found))
"""


def in_ranges(url: str, anchors: list[Anchor] = (), start: Anchor | None = None) -> Any:  # type: ignore[assignment]
    argv = [
        sys.executable,
        "-c",
        IN_RANGES,
        url,
        json.dumps([[a.count, a.hash] for a in anchors]),
        json.dumps([start.count, start.hash] if start else None),
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def one_walk(url: str, anchors: list[Anchor] = (), start: Anchor | None = None) -> list[Any]:  # type: ignore[assignment]
    verdict = asdict(verify_full(migrated(url), anchors=anchors, start=start, parallel=False).verdict)
    return [verdict["ok"], verdict["count"], verdict["head"], verdict["bad_id"], verdict["problem"]]


@pytest.mark.parametrize(
    "damage",
    [
        None,
        lambda c: c.execute(text("UPDATE decisions SET reason = 'verified' WHERE id = 3")),  # first range
        edit,  # row 4
        lambda c: c.execute(text("UPDATE decisions SET liveness = NULL WHERE id = 41")),  # last range
        lambda c: c.execute(text("UPDATE decisions SET hash = :h WHERE id = 30"), {"h": "f" * 64}),  # a boundary row
        delete,  # row 5, inside the first range
        lambda c: move_ids(c, 25, 2),  # a gap across a range's end
    ],
    ids=["intact", "first-range", "row-4", "last-range", "boundary-hash", "deleted", "gap"],
)
def test_ranges_name_what_one_walk_names(database_url: str, damage: Any) -> None:
    engine = migrated(database_url).engine
    fill(engine, 60)
    if damage is not None:
        tamper(engine, damage)
    expected = one_walk(database_url)
    found = in_ranges(database_url)
    assert found is None or found == expected, (found, expected)
    if damage is None or damage is edit:
        assert found == expected  # the ranges did run: their boundary rows are there


def test_ranges_check_every_anchor_and_a_continued_archive(database_url: str) -> None:
    engine = migrated(database_url).engine
    fill(engine, 60)
    head = one_walk(database_url)[2]
    with engine.connect() as connection:
        hashes = dict(connection.execute(text("SELECT id, hash FROM decisions WHERE id IN (10, 35, 59)")).all())
    good = [Anchor(10, hashes[10]), Anchor(35, hashes[35]), Anchor(60, head)]
    assert in_ranges(database_url, good) == one_walk(database_url, good) and one_walk(database_url, good)[0]
    for bad in ([Anchor(35, "a" * 64)], [Anchor(75, head)]):  # rewritten, truncated
        assert in_ranges(database_url, good + bad) == one_walk(database_url, good + bad)
        assert not one_walk(database_url, good + bad)[0]
    start = Anchor(10, hashes[10])  # the first ten rows archived
    tamper(engine, lambda c: c.execute(text("DELETE FROM decisions WHERE id <= 10")))
    assert in_ranges(database_url, [], start) == one_walk(database_url, [], start)
    assert one_walk(database_url, [], start)[:2] == [True, 60]
