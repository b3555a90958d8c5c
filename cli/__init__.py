"""The `facesign-recovery` command: the one place that wires everything together."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapters.queue.names import QUEUES
from config import ConfigError, Settings

if TYPE_CHECKING:
    from adapters.db.engine import Database

log = logging.getLogger("facesign_recovery")
WORKER_SHUTDOWN_TIMEOUT_MS = 30_000


def load_settings(**overrides: str) -> Settings:
    """Settings from the environment; `overrides` are variables a command-line flag stands for."""
    try:
        return Settings.from_env({**os.environ, **overrides} if overrides else None)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


def load_service_settings() -> Settings:
    """Settings for a long-running service: also the secrets it cannot run safely without."""
    settings = load_settings()
    try:
        settings.check_service()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
    return settings


def setup_logging(level: int = logging.INFO) -> None:
    from adapters.logs import configure

    try:
        log_format = Settings.from_env().log_format
    except ConfigError:
        log_format = None  # the command's own load_settings() reports the bad variable
    configure(level, sys.stderr, log_format)


def database(settings: Settings | None = None) -> Database:
    from adapters.db.engine import Database, Timeouts

    settings = settings or load_settings()
    return Database.connect(settings.database_url, Timeouts.of(settings))


@click.group()
@click.version_option(package_name="facesign-recovery", prog_name="facesign-recovery")
def main() -> None:
    """Account recovery by face: the customer-side backend of a FaceSign integration."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--sandbox", is_flag=True, help="as FACESIGN_SANDBOX=1: the built-in FaceSign stand-in, on loopback")
def serve(host: str, port: int, sandbox: bool) -> None:
    """The receiver; in embedded mode (no REDIS_URL) also the workers; with --sandbox the FaceSign stand-in."""
    from cli.serve import run_serve

    setup_logging()
    settings = load_settings(FACESIGN_SANDBOX="1") if sandbox else load_settings()
    if not settings.public_base_url_given:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        settings = replace(settings, public_base_url=f"http://{shown}:{port}")
    run_serve(settings, host, port)


@main.command()
@click.option("--processes", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--queues",
    multiple=True,
    type=click.Choice(QUEUES),
    help="consume only these queues (repeatable; default: all), to scale deciding and mailing apart",
)
def worker(processes: int, threads: int, queues: tuple[str, ...]) -> None:
    """Dramatiq worker processes consuming from Redis."""
    from adapters.logs import resolve_format

    settings = load_service_settings()
    if settings.embedded:
        raise click.ClickException("REDIS_URL: required for `worker`; in embedded mode `serve` runs the workers")
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        # SIGTERM: in-flight actors get this long to finish (Dramatiq's default is 10 minutes); the
        # prefetched rest is requeued at once, and anything killed returns after the heartbeat timeout.
        "--worker-shutdown-timeout",
        str(WORKER_SHUTDOWN_TIMEOUT_MS),
    ]
    if queues:
        argv += ["--queues", *dict.fromkeys(queues)]
    # The worker processes read their settings from the environment: their pools are sized by this.
    os.environ["WORKER_THREADS"] = str(threads)
    # Dramatiq pipes its processes' output, so they cannot tell a terminal: they get the format decided here.
    os.environ["LOG_FORMAT"] = resolve_format(settings.log_format, sys.stderr)
    _worker_metrics_env(settings)
    os.execv(sys.executable, argv)  # noqa: S606  (the worker becomes Dramatiq's own supervisor)


def _worker_metrics_env(settings: Settings) -> None:
    """Dramatiq's Prometheus middleware aggregates its processes through files; prometheus_client picks
    multiprocess mode when first imported, so the directory must be in the environment before exec.
    Its exposition server takes the whole worker down when its port is taken, so a second `worker`
    on the same host falls back to a free port instead of dying."""
    import socket
    import tempfile

    directory = settings.worker_metrics_dir or tempfile.mkdtemp(prefix="facesign-worker-metrics-")
    os.makedirs(directory, exist_ok=True)
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    os.environ.update(
        dramatiq_prom_db=directory,
        PROMETHEUS_MULTIPROC_DIR=directory,
        dramatiq_prom_host=host,
        dramatiq_prom_port=str(port),
    )
    click.echo(f"worker metrics on http://{host}:{port}/metrics", err=True)


@main.command()
@click.option("--once", is_flag=True, help="one pass, then exit")
def reconcile(once: bool) -> None:
    """Decide attempts pending longer than RECONCILE_AFTER by asking FaceSign; expire stale ones."""
    import signal
    import threading

    from adapters.queue.app_events import EventDeliveries
    from adapters.queue.broker import broker_for
    from usecases.deps import Deps
    from usecases.reconcile import reconcile_once, run_forever

    setup_logging()
    settings = load_service_settings()
    deps = Deps.from_settings(settings)
    # Lost event deliveries go back to the workers; in embedded mode this process delivers them itself.
    deliver_event = None if settings.embedded else EventDeliveries(broker_for(settings)).enqueue_one
    if once:
        tally = reconcile_once(deps, deliver_event=deliver_event)
        click.echo(" ".join(f"{key}={value}" for key, value in sorted(tally.items())) or "nothing to do")
        return
    _reconciler_metrics(settings)
    stop = threading.Event()
    # SIGTERM ends the loop after its pass, so that it writes its last audit anchor on the way out.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_forever(deps, stop, deliver_event=deliver_event)
    except KeyboardInterrupt:
        stop.set()


def _reconciler_metrics(settings: Settings) -> None:
    """The reconciler's last pass, the chain's last verification, its FaceSign calls and its share of the
    FaceSign budget, for Prometheus."""
    from adapters.facesign.budget import budget_metrics
    from adapters.facesign.client import vendor_metrics
    from adapters.status_metrics import serve_metrics, status_metrics

    host, port = settings.reconciler_metrics_host, settings.reconciler_metrics_port
    if not port:
        return
    vendor, budget = vendor_metrics(), budget_metrics()
    collectors = (status_metrics(), vendor.latency, vendor.errors)
    budget_collectors = (budget.tokens, budget.waits, budget.wait_seconds, budget.rate_limited)
    try:
        port = serve_metrics(host, port, *collectors, *budget_collectors)
    except OSError as exc:
        raise click.ClickException(f"RECONCILER_METRICS_HOST: cannot listen on {host} ({exc.strerror})") from None
    click.echo(f"reconciler metrics on http://{host}:{port}/metrics", err=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to head."""
    from adapters.db.migrate import upgrade

    try:
        upgrade(database())
    except Exception as exc:
        raise click.ClickException(f"migration failed: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    click.echo("database is at the latest schema")


@db.command("check-grants")
def db_check_grants() -> None:
    """Exit 1 when DATABASE_URL's role can update, delete or truncate the audit log (PostgreSQL)."""
    from adapters.db.grants import TOO_MUCH, audit_grants

    grants = audit_grants(database())
    if grants is None:
        click.echo("check-grants does not apply: SQLite has no roles; protect the database file instead")
        return
    if grants.append_only:
        click.echo(f"role {grants.role} can only read and append to the audit log: good")
        return
    problems = [f"can {privilege} decisions" for privilege in grants.excess]
    if grants.owner:
        problems.append("owns decisions (may drop it or disable its triggers)")
    click.echo(
        f"role {grants.role} {'; '.join(problems)}: run the service as a role with only SELECT, INSERT on "
        f"decisions (REVOKE {', '.join(TOO_MUCH)} ON decisions FROM {grants.role})",
        err=True,
    )
    sys.exit(1)


@main.group()
def users() -> None:
    """The local user directory."""


@users.command("add")
@click.argument("email")
@click.option("--id", "user_id", default=None, help="your application's user id (random if omitted)")
@click.option("--name", default=None)
@click.option("--exist-ok", is_flag=True, help="succeed without change when the email is already known")
def users_add(email: str, user_id: str | None, name: str | None, exist_ok: bool) -> None:
    """Add one user to the local directory."""
    from usecases import directory

    with _user_errors():
        user, added = directory.add_user(database(), email, user_id, name, exist_ok=exist_ok)
    click.echo(f"added {user.id} <{user.email}>" if added else f"{email} is already user {user.id}")


@users.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def users_import(file: Path) -> None:
    """Add users from a CSV with header email,id,name (all or nothing)."""
    from usecases import directory

    with _user_errors():
        count = directory.import_users(database(), file)
    click.echo(f"imported {count} users")


@contextmanager
def _user_errors() -> Iterator[None]:
    from adapters.db.users import UserError

    try:
        yield
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
def sandbox(host: str, port: int) -> None:
    """The FaceSign sandbox alone; it signs webhooks with FACESIGN_WEBHOOK_SECRET."""
    from sandbox.server import run

    setup_logging()
    settings = load_settings()
    secret = settings.webhook_secrets[0] if settings.webhook_secrets else secrets.token_hex(16)
    if not settings.webhook_secrets:
        click.echo(f"FACESIGN_WEBHOOK_SECRET is unset; the sandbox signs with: {secret}", err=True)
    from cli.serve import is_loopback

    if not is_loopback(host):
        click.echo(
            f"WARNING: the sandbox listens on {host}: anyone who reaches it can list the enrolled users and "
            "approve any of them. Keep it on a private network (or on 127.0.0.1).",
            err=True,
        )
    run(host, port, f"{settings.public_base_url}/webhooks/facesign", secret)


def _register_subcommands() -> None:
    from cli.audit import audit, auditor_token
    from cli.dlq import dlq
    from cli.doctor import doctor
    from cli.events import events
    from cli.locks import users_locks, users_unlock

    main.add_command(audit)
    main.add_command(auditor_token)
    main.add_command(dlq)
    main.add_command(doctor)
    main.add_command(events)
    users.add_command(users_locks)
    users.add_command(users_unlock)


_register_subcommands()

if __name__ == "__main__":
    main()
