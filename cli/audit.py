"""`audit …` and `auditor-token …`: reading, checking and archiving the decision log, and who may read it."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click


def _settings() -> Any:
    from cli import load_settings

    return load_settings()


def _sessions() -> Any:
    from adapters.db import make_engine, session_factory

    return session_factory(make_engine(_settings().database_url))


def _iso(_: Any, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param=param) from None
    # SQLite compares the stored UTC text, so every bound is turned into UTC first.
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).astimezone(UTC)


def _record_cli_access(sessions: Any, action: str, filters: Any) -> None:
    from adapters.auditors import record_access
    from adapters.db import transaction

    doc = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(filters).items()}
    with transaction(sessions) as session:
        record_access(session, f"cli:{getpass.getuser()}", action, doc, datetime.now(UTC))


@click.group()
def audit() -> None:
    """The decision log."""


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
    from adapters.audit_log import Filters, pseudonym_key, query, to_record
    from cli.output import write_records
    from domain.audit_chain import email_digest

    sessions = _sessions()
    digest = None
    if email:
        with sessions() as session:
            digest = email_digest(pseudonym_key(session, _settings().audit_pseudonym_key), email)
    filters = Filters(since, until, outcome, reason, session_id, attempt_id, digest)
    _record_cli_access(sessions, "query", filters)
    with sessions() as session:
        records = (to_record(row) for row in query(session, filters, limit))
        write_records(records, fmt, sys.stdout)


def _file_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise click.ClickException(f"{path}:{number}: not a JSON line") from None


@audit.command("verify")
@click.option("--anchor", "anchor_text", metavar="COUNT:HASH", help="also check the head printed by `audit anchor`")
@click.option(
    "--file",
    "archive",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="check a JSON-lines archive written by `audit export` instead of the database",
)
@click.option(
    "--continues",
    "start_text",
    metavar="COUNT:HASH",
    help="the rows continue an archive with this anchor (its rows were removed from the table)",
)
def audit_verify(anchor_text: str | None, archive: Path | None, start_text: str | None) -> None:
    """Recompute the hash chain; exit 0 with the row count, or 1 naming the first bad row."""
    from adapters.audit_log import Filters, query, to_record
    from domain.audit_verify import verify

    anchor = _anchor(anchor_text, "--anchor")
    start = _anchor(start_text, "--continues")
    if archive is not None:
        verdict = verify(_file_records(archive), anchor, start)
    else:
        with _sessions()() as session:
            verdict = verify((to_record(row) for row in query(session, Filters())), anchor, start)
    if not verdict.ok:
        raise click.ClickException(verdict.describe())
    rows = verdict.count - (start.count if start else 0)
    continued = f" after the archive's {start.count}" if start else ""
    matching = " and matching the anchor" if anchor else ""
    click.echo(f"{rows} rows{continued}, chain intact{matching}; head {verdict.head}")


def _anchor(text: str | None, option: str) -> Any:
    from domain.audit_verify import Anchor

    try:
        return Anchor.parse(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@audit.command("anchor")
def audit_anchor() -> None:
    """Verify the chain and print its head as COUNT:HASH, to keep somewhere the database cannot reach."""
    from adapters.audit_log import Filters, query, to_record
    from domain.audit_verify import Anchor, verify

    with _sessions()() as session:
        verdict = verify(to_record(row) for row in query(session, Filters()))
    if not verdict.ok:
        raise click.ClickException(verdict.describe())
    if verdict.count == 0:
        raise click.ClickException("the audit log is empty: nothing to anchor yet")
    click.echo(str(Anchor(verdict.count, verdict.head)))


@audit.command("export")
@click.option("--before", required=True, callback=_iso, help="ISO 8601: archive the decisions made before this")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="file (default: stdout)")
def audit_export(before: datetime, fmt: str, output: Path | None) -> None:
    """Archive the chain's oldest rows: every row up to the first one decided at or after --before."""
    from adapters.audit_log import Filters, query, to_record
    from cli.output import write_records
    from domain.audit_verify import Anchor

    sessions = _sessions()
    _record_cli_access(sessions, "export", Filters(until=before))
    last: dict[str, Any] = {}

    def prefix(session: Any) -> Iterator[dict[str, Any]]:
        # A contiguous prefix (not every row before the date) so that the archive verifies on its own.
        for row in query(session, Filters()):
            if row.decided_at.replace(tzinfo=row.decided_at.tzinfo or UTC) >= before:
                return
            last["record"] = record = to_record(row)
            yield record

    target = output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout)
    with sessions() as session, target as out:
        count = write_records(prefix(session), fmt, out)
    if count:
        head = Anchor(count, last["record"]["hash"])
        click.echo(f"exported {count} rows; anchor of the archive: {head}", err=True)
    else:
        click.echo("no decisions before that time", err=True)


@audit.command("access-log")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def audit_access_log(limit: int) -> None:
    """Who read the audit log, newest first."""
    from adapters.auditors import access_log

    with _sessions()() as session:
        for entry in access_log(session, limit):
            filters = json.dumps(entry.filters, sort_keys=True, separators=(",", ":"))
            click.echo(f"{entry.at.isoformat()}  {entry.auditor}  {entry.action}  {filters}")


@click.group("auditor-token")
def auditor_token() -> None:
    """Tokens for GET /audit/decisions and the /audit dashboard."""


def _auditor_errors(action: Any) -> Any:
    from adapters.auditors import AuditorError

    try:
        return action()
    except AuditorError as exc:
        raise click.ClickException(str(exc)) from None


@auditor_token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Print a new auditor token, once; only its hash is stored."""
    from adapters.auditors import create_token
    from adapters.db import transaction

    with transaction(_sessions()) as session:
        token = _auditor_errors(lambda: create_token(session, name, datetime.now(UTC)))
    click.echo(token)
    click.echo(f"auditor {name!r} created; the token above is shown only this once", err=True)


@auditor_token.command("list")
def token_list() -> None:
    """Auditors, their creation time and whether they are revoked (never the tokens)."""
    from adapters.auditors import list_tokens

    with _sessions()() as session:
        rows = list_tokens(session)
    for row in rows:
        state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
        click.echo(f"{row.name}  created {row.created_at.isoformat()}  {state}")
    if not rows:
        click.echo("no auditors", err=True)


@auditor_token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke an auditor's token at once; the name stays, for the access log."""
    from adapters.auditors import revoke_token
    from adapters.db import transaction

    with transaction(_sessions()) as session:
        _auditor_errors(lambda: revoke_token(session, name, datetime.now(UTC)))
    click.echo(f"auditor {name!r} revoked")
