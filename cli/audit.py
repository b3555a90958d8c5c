"""`audit …` and `auditor-token …`: reading, checking and archiving the decision log, and who may read it."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cli import database, load_settings
from cli.audit_chain import audit_anchor, audit_verify


def _iso(_: Any, param: click.Parameter, value: str | None) -> datetime | None:
    from domain.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def operator() -> str:
    """Who is at the command line, for the access log: the OS account, not a variable anyone can set."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid{os.getuid()}"


@click.group()
def audit() -> None:
    """The decision log."""


audit.add_command(audit_verify)
audit.add_command(audit_anchor)


@audit.command("query")
@click.option("--since", callback=_iso, help="ISO 8601, inclusive")
@click.option("--until", callback=_iso, help="ISO 8601, exclusive")
@click.option("--outcome", type=click.Choice(["approved", "denied"]))
@click.option("--reason")
@click.option("--session-id")
@click.option("--attempt-id")
@click.option("--email", help="only decisions about this email (digested locally with the pseudonym key)")
@click.option("--limit", type=click.IntRange(min=1))
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
def audit_query(
    since: datetime | None,
    until: datetime | None,
    outcome: str | None,
    reason: str | None,
    session_id: str | None,
    attempt_id: str | None,
    email: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """Decisions, oldest first, with the API's field names."""
    from adapters.db.audit_log import Filters
    from usecases import audit as audit_log
    from usecases.audit_formats import write_records

    settings = load_settings()
    db = database(settings)
    digest = None
    if email:
        from adapters.db.pseudonyms import MissingPseudonymKey

        try:
            digest = audit_log.digest_of(db, settings.audit_pseudonym_key, email, sandbox=settings.sandbox_mode)
        except MissingPseudonymKey:
            raise click.ClickException(
                "AUDIT_PSEUDONYM_KEY: required to look up by email (for a sandbox database, FACESIGN_SANDBOX=1)"
            ) from None
    filters = Filters(since, until, outcome, reason, session_id, attempt_id, digest)
    with audit_log.streamed(db, operator(), "query", filters, limit) as records:
        write_records(records, fmt, sys.stdout)


@audit.command("export")
@click.option("--before", required=True, callback=_iso, help="ISO 8601: archive the decisions made before this")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="file (default: stdout)")
def audit_export(before: datetime, fmt: str, output: Path | None) -> None:
    """Archive the chain's oldest rows: every row up to the first one decided at or after --before."""
    from domain.audit_verify import Anchor
    from usecases import audit as audit_log
    from usecases.audit_formats import write_records

    last: dict[str, Any] = {}

    def remembered(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            last["hash"] = record["hash"]
            yield record

    target = output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout)
    with audit_log.export_prefix(database(), operator(), before) as records, target as out:
        count = write_records(remembered(records), fmt, out)
    if count:
        click.echo(f"exported {count} rows; anchor of the archive: {Anchor(count, last['hash'])}", err=True)
    else:
        click.echo("no decisions before that time", err=True)


@audit.command("access-log")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def audit_access_log(limit: int) -> None:
    """Who read the audit log, newest first."""
    import json

    from usecases import audit as audit_log

    for entry in audit_log.access_log(database(), limit):
        filters = json.dumps(entry.filters, sort_keys=True, separators=(",", ":"))
        click.echo(f"{entry.at.isoformat()}  {entry.auditor}  {entry.action}  {filters}")


@click.group("auditor-token")
def auditor_token() -> None:
    """Tokens for GET /audit/decisions and the /audit dashboard."""


@contextmanager
def _auditor_errors() -> Iterator[None]:
    from usecases.audit import AuditorError

    try:
        yield
    except AuditorError as exc:
        raise click.ClickException(str(exc)) from None


@auditor_token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Print a new auditor token, once; only its hash is stored."""
    from usecases import audit as audit_log

    with _auditor_errors():
        token = audit_log.create_auditor(database(), name)
    click.echo(token)
    click.echo(f"auditor {name!r} created; the token above is shown only this once", err=True)


@auditor_token.command("list")
def token_list() -> None:
    """Auditors, their creation time and whether they are revoked (never the tokens)."""
    from usecases import audit as audit_log

    rows = audit_log.list_auditors(database())
    for row in rows:
        state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
        click.echo(f"{row.name}  created {row.created_at.isoformat()}  {state}")
    if not rows:
        click.echo("no auditors", err=True)


@auditor_token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke an auditor's token at once; the name stays, for the access log."""
    from usecases import audit as audit_log

    with _auditor_errors():
        audit_log.revoke_auditor(database(), name)
    click.echo(f"auditor {name!r} revoked")
