"""`events list` and `events replay`: the signed events sent to the customer's application."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import click

from cli import load_settings
from cli.output import echo_rows
from config import Settings

COLUMNS = ("eventId", "type", "createdAt", "endpoint", "status", "attempts", "lastError")


def _deps(settings: Settings) -> Any:
    from usecases.deps import Deps

    return Deps.from_settings(settings, threads=1)


def _endpoint(url: str) -> str:
    """Where it goes without path or query, which may carry a credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


@click.group()
def events() -> None:
    """Events for the customer's application (APP_WEBHOOK_URL)."""


@events.command("list")
@click.option("--failed", is_flag=True, help="only dead letters: deliveries that gave up after the retry window")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
def events_list(failed: bool, limit: int, fmt: str) -> None:
    """Each event's delivery to each URL, newest first."""
    from domain.times import format_time
    from usecases.app_events import listing

    rows = [
        {
            "eventId": item.event_id,
            "type": item.type,
            "createdAt": format_time(item.created_at),
            "endpoint": _endpoint(item.url),
            "status": item.status,
            "attempts": item.attempts,
            "lastError": item.last_error,
        }
        for item in listing(_deps(load_settings()), failed, limit)
    ]
    echo_rows(rows, COLUMNS, fmt, "deliveries")


@events.command("replay")
@click.argument("event_id", required=False)
@click.option("--failed", "replay_failed", is_flag=True, help="replay every dead letter")
def events_replay(event_id: str | None, replay_failed: bool) -> None:
    """Send an event (or every dead letter) again, with a fresh retry window and the same event id."""
    from adapters.queue.app_events import EventDeliveries
    from adapters.queue.broker import broker_for
    from usecases.app_events import deliver, replay

    if bool(event_id) == replay_failed:
        raise click.UsageError("give either EVENT_ID or --failed")
    settings = load_settings()
    if not settings.app_webhook_urls:
        raise click.ClickException("APP_WEBHOOK_URL: unset, so there is nowhere to send events")
    deps = _deps(settings)
    deliveries = replay(deps, event_id)
    if deliveries is None:
        raise click.ClickException(f"no event {event_id}")
    if settings.embedded:
        # No worker shares an in-process broker with this command: deliver now, once each; a failure
        # stays pending for `serve`'s reconciler to retry.
        for delivery_id in deliveries:
            deliver(deps, delivery_id)
    else:
        EventDeliveries(broker_for(settings)).enqueue(deliveries)
    click.echo(f"replayed {len(deliveries)} deliveries")
