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


# A spreadsheet runs a cell starting with one of these as a formula (`=HYPERLINK(...)`, `@SUM(...)`),
# and a leading tab or carriage return can hide that. Such cells get a leading apostrophe, which
# spreadsheets show as text. Only the CSV changes: JSON lines stay byte-exact, the verifiable form.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_records(records: Iterable[Mapping[str, Any]], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    elif fmt == "csv":
        # CRLF as RFC 4180 has it; it also makes the writer quote any cell holding a CR, which with a
        # bare LF terminator it would leave unquoted, letting a value start a new row of its choosing.
        writer = csv.DictWriter(out, fieldnames=RECORD_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        for record in records:
            writer.writerow({name: spreadsheet_safe(value) for name, value in record.items()})
            count += 1
    else:
        out.write("  ".join(TABLE_FIELDS) + "\n")
        for record in records:
            out.write("  ".join("-" if record[f] is None else str(record[f]) for f in TABLE_FIELDS) + "\n")
            count += 1
        out.write(f"({count} rows)\n")
    return count
