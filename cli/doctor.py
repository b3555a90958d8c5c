"""`facesign-recovery doctor`: one line per check, what to fix under each failure, exit 1 on any."""

from __future__ import annotations

import click


@click.command()
def doctor() -> None:
    """Check the configuration, database schema, Redis, FaceSign credentials and webhook secret."""
    from usecases.doctor import run_checks

    checks = run_checks()
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red", bold=True)
        click.echo(f"{mark}  {check.name:<{width}}  {check.found}")
        if not check.ok:
            click.echo(f"      {'':<{width}}  fix: {check.fix}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        click.echo(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}", err=True)
        raise SystemExit(1)
    click.echo("everything checked is in order")
