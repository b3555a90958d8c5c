"""`audit verify` and `audit anchor`: proving the decision log intact, and keeping its anchors elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli import database, load_settings

T = TypeVar("T")


@click.command("verify")
@click.option("--anchor", "anchor_text", metavar="COUNT:HASH", help="also check the head printed by `audit anchor`")
@click.option(
    "--anchors",
    "anchors_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="also check every anchor in this file (JSON lines from AUDIT_ANCHOR_SINK, or COUNT:HASH lines)",
)
@click.option(
    "--since-checkpoint",
    is_flag=True,
    help="only the rows after the latest checkpoint (quick; the full verification stays the authority)",
)
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
def audit_verify(
    anchor_text: str | None,
    anchors_file: Path | None,
    since_checkpoint: bool,
    archive: Path | None,
    start_text: str | None,
) -> None:
    """Recompute the hash chain; exit 0 with the row count, or 1 naming the first bad row or contradicted anchor.

    A verification of the database is noted as a checkpoint and, when AUDIT_ANCHOR_SINK is set, its head
    is written there as an anchor."""
    from domain.audit_verify import verify
    from usecases import audit as audit_log
    from usecases.audit_verification import verify_full, verify_incremental

    anchors = [a for a in (_anchor(anchor_text, "--anchor"),) if a] + _anchors_in(anchors_file)
    start = _anchor(start_text, "--continues")
    if since_checkpoint and (anchors or archive or start):
        raise click.UsageError(
            "--since-checkpoint checks only new rows: use it without --anchor(s), --file, --continues"
        )
    archived = f" after the archive's {start.count}" if start else ""
    if archive is not None:
        with archive.open(encoding="utf-8") as lines:
            records = audit_log.file_records(lines, archive)
            verdict = _failing_clearly(lambda: verify(records, start=start, anchors=anchors))
        _report(verdict, start.count if start else 0, len(anchors), archived)
        return
    settings = load_settings()
    db = database(settings)
    by = _who("audit verify")
    if since_checkpoint:
        result = verify_incremental(db, by)
        since = result.since
        after = (
            f" after checkpoint {since.id} (row {since.head_id}, {since.verified_at:%Y-%m-%d %H:%M} UTC)"
            if since
            else ""
        )
        _report(result.verdict, result.started_after, 0, after)
    else:
        result = verify_full(db, by, anchors=anchors, start=start)
        _report(result.verdict, result.started_after, len(anchors), archived)
    _anchor_to_sink(settings, result, by, strict=False)


def _report(verdict: Any, started_after: int, anchors: int, after: str) -> None:
    if not verdict.ok:
        raise click.ClickException(verdict.describe())
    matching = "" if not anchors else " and matching the anchor" if anchors == 1 else f" and matching {anchors} anchors"
    click.echo(f"{verdict.count - started_after} rows{after}, chain intact{matching}; head {verdict.head}")


def _who(command: str) -> str:
    from cli.audit import operator  # at call time: cli.audit imports this module
    from usecases.audit_verification import process_name

    return process_name(f"{command} ({operator()})")


def _anchors_in(path: Path | None) -> list[Any]:
    from usecases.anchoring import read_anchors

    if path is None:
        return []
    with path.open(encoding="utf-8") as lines:
        return _failing_clearly(lambda: read_anchors(lines, path))


def _anchor_to_sink(settings: Any, result: Any, by: str, *, strict: bool) -> None:
    from adapters.anchors import make_sink
    from usecases.anchoring import anchor_now

    sink = make_sink(settings.audit_anchor_sink, settings.audit_anchor_token)
    problem = anchor_now(sink, result, by)
    if problem and strict:
        raise click.ClickException(f"anchor not written to AUDIT_ANCHOR_SINK: {problem}")
    if problem:
        click.echo(f"warning: anchor not written to AUDIT_ANCHOR_SINK: {problem}", err=True)


def _failing_clearly(action: Callable[[], T]) -> T:
    try:
        return action()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _anchor(text: str | None, option: str) -> Any:
    from domain.audit_verify import Anchor

    try:
        return Anchor.parse(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _seconds(_: Any, param: click.Parameter, value: str | None) -> float | None:
    """`90`, `90s`, `30m`, `1h`, `1d` as seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    if not number.isdigit() or int(number) < 1:
        raise click.BadParameter(f"a duration such as 90s, 30m or 1h, not {value!r}", param=param)
    return float(int(number) * units[unit])


@click.command("anchor")
@click.option("--every", callback=_seconds, metavar="DURATION", help="keep running: anchor at this interval (1h, 30m)")
def audit_anchor(every: float | None) -> None:
    """Verify the chain and print its head as COUNT:HASH, to keep somewhere the database cannot reach
    (also written to AUDIT_ANCHOR_SINK when set). With --every, keep anchoring until stopped, and once
    more on the way out."""
    from usecases.audit_verification import verify_full

    settings = load_settings()
    db = database(settings)
    by = _who("audit anchor")
    result = verify_full(db, by)
    if not result.verdict.ok:
        raise click.ClickException(result.verdict.describe())
    if every is None and result.anchor is None:
        raise click.ClickException("the audit log is empty: nothing to anchor yet")
    if every is None:
        click.echo(str(result.anchor))
        _anchor_to_sink(settings, result, by, strict=True)
    else:
        _anchor_every(db, settings, every, by, result)


def _anchor_every(db: Any, settings: Any, every: float, by: str, first: Any) -> None:
    """The loop: SIGTERM or Ctrl-C stops it after one last anchor."""
    import signal
    import threading

    from adapters.anchors import make_sink
    from usecases.anchoring import AnchorWriter

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    writer = AnchorWriter(db, make_sink(settings.audit_anchor_sink, settings.audit_anchor_token), every, by)
    writer.due = writer.clock() + every
    writer.send(first)
    _echo_anchor(first)
    while not stop.wait(min(every, 30.0)):
        _echo_anchor(writer.tick())
    _echo_anchor(writer.tick(force=True))


def _echo_anchor(result: Any) -> None:
    if result is not None and result.anchor is not None:
        click.echo(str(result.anchor))
    elif result is not None and not result.verdict.ok:
        click.echo(f"error: {result.verdict.describe()}", err=True)
