"""A full verification split over processes, for long logs: the same answer as one walk, sooner.

Each row's hash depends only on its own fields and its stored `prevHash`, so the chain can be checked
in ranges: a range starts from the hash stored on the row before it and must end on the hash stored
on its own last row, which is where the next range starts. Every row is then checked exactly as one
walk checks it (its position, its link, its content), and the first failing range, in chain order,
names the same first bad row one walk would.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from adapters.db import audit_log
from adapters.db.audit_log import Filters
from adapters.db.engine import Database
from domain.audit_verify import Anchor, Verdict, verify

MIN_ROWS = 400_000  # below this, starting the processes costs more than it saves
MAX_WORKERS = 8


def workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def _verify_range(url: str, start: Anchor | None, rows: int | None, anchors: Sequence[Anchor]) -> Verdict:
    db = Database.connect(url)
    try:
        with db.reading() as session:
            after = start.count if start else 0
            return verify(audit_log.records(session, Filters(), rows, after), start=start, anchors=anchors)
    finally:
        db.dispose()


def _bounds(db: Database, first: int, last: int, parts: int) -> list[Anchor] | None:
    """The stored hashes the ranges start from, or None when a boundary row is missing (one walk then
    names the gap, as it would anyway)."""
    size = (last - first + 1) // parts
    bounds = []
    with db.reading() as session:
        for index in range(1, parts):
            row_id = first - 1 + index * size
            stored = audit_log.hash_of(session, row_id)
            if stored is None:
                return None
            bounds.append(Anchor(row_id, stored))
    return bounds


def verify_in_ranges(
    db: Database,
    start: Anchor | None,
    anchors: Sequence[Anchor],
    processes: int | None = None,
    min_rows: int = MIN_ROWS,
) -> Verdict | None:
    """The verdict of a walk from `start` (the first row when None), computed in ranges by `processes`
    processes; None when the log is too short to gain from it or a boundary row is missing."""
    processes = processes or workers()
    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None  # forking a process with other threads running could copy a lock some thread holds
    first = (start.count if start else 0) + 1
    with db.reading() as session:
        last = audit_log.head_id(session)
    if processes < 2 or last - first + 1 < max(min_rows, processes):
        return None
    bounds = _bounds(db, first, last, processes)
    if bounds is None:
        return None
    starts = [start, *bounds]
    ends = [*bounds, None]  # the last range runs to whatever the end of the log is then
    url = db.engine.url.render_as_string(hide_password=False)
    jobs = []
    # Forked (nothing to re-import, and no __main__ guard needed in the caller); each range opens its own
    # connection and leaves the parent's alone.
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork")) as pool:
        for begin, end in zip(starts, ends, strict=True):
            low = begin.count if begin else 0
            if end is None:
                mine = [a for a in anchors if a.count > low]
                jobs.append(pool.submit(_verify_range, url, begin, None, mine))
            else:
                mine = [end, *(a for a in anchors if low < a.count <= end.count)]
                jobs.append(pool.submit(_verify_range, url, begin, end.count - low, mine))
        verdicts = [job.result() for job in jobs]
    return next((v for v in verdicts if not v.ok), verdicts[-1])
