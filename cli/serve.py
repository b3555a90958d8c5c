"""`serve`: the receiver, plus in embedded mode the worker threads and the built-in sandbox."""

from __future__ import annotations

import logging
import secrets
from contextlib import ExitStack
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import click
import uvicorn

from adapters.db.engine import Database, Timeouts
from adapters.db.migrate import upgrade
from adapters.facesign.flow_file import load_flow
from adapters.queue.broker import broker_for, session_events
from config import ConfigError, Settings
from receiver.app import create_app
from receiver.services import Services
from usecases.deps import Deps
from usecases.directory import everyone

log = logging.getLogger("facesign_recovery.serve")

BANNER = """
==================================================================
 !!! FaceSign SANDBOX in use (FACESIGN_SANDBOX=1 or --sandbox) !!!
 No real face verification happens: a local stand-in answers at
   {url}
 and approves whichever identity the person at its page picks.
 {key_line}
 For production: unset FACESIGN_SANDBOX and set FACESIGN_API_KEY,
 FACESIGN_WEBHOOK_SECRET and AUDIT_PSEUDONYM_KEY.
==================================================================
"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def start_sandbox(settings: Settings, stack: ExitStack, db: Database) -> Settings:
    """Start the sandbox, enrol the local users, and point the client and the secret at it."""
    from sandbox.server import SandboxServer

    secret = settings.webhook_secrets[0] if settings.webhook_secrets else secrets.token_hex(24)
    server = SandboxServer("127.0.0.1", settings.sandbox_port, f"{settings.public_base_url}/webhooks/facesign", secret)
    server.start()
    stack.callback(server.stop)
    for email, name in everyone(db):
        server.state.enroll(email, name or email.split("@")[0])
    key_line = (
        "Pseudonyms use AUDIT_PSEUDONYM_KEY."
        if settings.audit_pseudonym_key
        else "Pseudonyms use the key stored in this database (sandbox only)."
    )
    click.echo(BANNER.format(url=server.url, key_line=key_line), err=True)
    return replace(settings, facesign_api_url=server.url, webhook_secrets=(secret, *settings.webhook_secrets[1:]))


def start_embedded_workers(deps: Deps, stack: ExitStack) -> Any:
    """Worker threads on the in-process broker; returns that broker for the receiver to enqueue on."""
    import dramatiq

    from workers import context
    from workers.actors import ACTORS, deliver_app_event

    broker = ACTORS[0].broker
    context.install(deps)
    worker = dramatiq.Worker(broker, worker_threads=deps.settings.worker_threads)
    worker.start()
    stack.callback(worker.stop)
    start_reconciler(deps, stack, deliver_app_event.send)
    return broker


def start_reconciler(deps: Deps, stack: ExitStack, deliver_event: Any = None) -> None:
    import threading

    from usecases.reconcile import run_forever

    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever,
        args=(deps, stop),
        kwargs={"deliver_event": deliver_event},
        name="reconciler",
        daemon=True,
    )
    thread.start()
    stack.callback(thread.join, 10)
    stack.callback(stop.set)


def check_start(settings: Settings, host: str) -> None:
    """Refuse before anything starts: a bad FLOW_FILE, missing secrets, a sandbox reachable from afar."""
    try:
        load_flow(settings.flow_file)
        settings.check_service()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
    if settings.sandbox_mode and not is_loopback(host):
        raise click.ClickException(
            f"invalid configuration: --host {host}: the sandbox serves on loopback only (it approves anyone); "
            "use --host 127.0.0.1, or a real FaceSign account for a shared deployment"
        )


def run_serve(settings: Settings, host: str, port: int) -> None:
    check_start(settings, host)
    with ExitStack() as stack:
        db = Database.connect(settings.database_url, Timeouts.of(settings))
        if settings.embedded:
            upgrade(db)
        if settings.sandbox_mode:
            settings = start_sandbox(settings, stack, db)
        deps = Deps.from_settings(settings, threads=settings.worker_threads, db=db)
        stack.callback(deps.close)
        if settings.embedded:
            broker = start_embedded_workers(deps, stack)
        else:
            broker = broker_for(settings)
        app = create_app(Services(deps, session_events(broker, settings, deps.pending)))
        mode = "embedded (in-process broker and workers)" if settings.embedded else "Redis (run `worker` separately)"
        click.echo(
            f"facesign-recovery listening on http://{host}:{port}  mode: {mode}\n"
            f"  send FaceSign webhooks to {settings.public_base_url}/webhooks/facesign\n"
            f"  start a recovery in a browser at {settings.public_base_url}/recover",
            err=True,
        )
        # log_config=None: uvicorn's lines go through the root logger, so they have our format and fields.
        # Proxy headers are believed from FORWARDED_ALLOW_IPS only (never '*': see config.py).
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
