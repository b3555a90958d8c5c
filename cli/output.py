"""Listings on the command line: a plain table for people, JSON lines for programs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click


def echo_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str, noun: str) -> None:
    """`fmt` "jsonl": one compact object per row; else the columns, one line per row (`-` for none) and
    a count, e.g. "(3 dead letters)"."""
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, separators=(",", ":")))
        return
    click.echo("  ".join(columns))
    for row in rows:
        click.echo("  ".join("-" if row[c] is None else str(row[c]) for c in columns))
    click.echo(f"({len(rows)} {noun})")
