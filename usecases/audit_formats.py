"""Audit records as a table, JSON lines or CSV, written as they stream: the API and the CLI share it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from adapters.db.audit_log import RECORD_FIELDS

TABLE_FIELDS = (
    "id",
    "decidedAt",
    "outcome",
    "reason",
    "sessionId",
    "attemptId",
    "recognition",
    "liveness",
    "matchedUserId",
)


def write_records(records: Iterable[Mapping[str, Any]], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=RECORD_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(record)
            count += 1
    else:
        out.write("  ".join(TABLE_FIELDS) + "\n")
        for record in records:
            out.write("  ".join("-" if record[f] is None else str(record[f]) for f in TABLE_FIELDS) + "\n")
            count += 1
        out.write(f"({count} rows)\n")
    return count
