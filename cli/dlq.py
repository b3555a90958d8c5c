"""`dlq list` and `dlq replay`: Dramatiq's dead-letter queues, which it keeps 7 days and never shows."""

from __future__ import annotations

from typing import Any

import click

from cli import load_settings
from cli.output import echo_rows

COLUMNS = ("messageId", "queue", "actor", "sessionId", "ageSeconds", "failure")


def _broker() -> Any:
    from adapters.queue.broker import broker_for

    settings = load_settings()
    if settings.embedded:
        raise click.ClickException("REDIS_URL: required; in embedded mode nothing is dead-lettered across restarts")
    return broker_for(settings)


def _row(letter: Any) -> dict[str, Any]:
    return {
        "messageId": letter.message_id,
        "queue": letter.queue,
        "actor": letter.actor,
        "sessionId": letter.session_id,
        "ageSeconds": round(letter.age_seconds()),
        "failure": letter.failure,
    }


@click.group()
def dlq() -> None:
    """Dead-lettered messages (Redis mode)."""


@dlq.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
def dlq_list(fmt: str) -> None:
    """Message id, actor, session id, failure and age of every dead letter, oldest first."""
    from adapters.queue.dead_letters import DeadLetterError, list_dead_letters

    try:
        rows = [_row(letter) for letter in list_dead_letters(_broker())]
    except DeadLetterError as exc:
        raise click.ClickException(str(exc)) from None
    echo_rows(rows, COLUMNS, fmt, "dead letters")


@dlq.command("replay")
@click.argument("message_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="replay every dead letter")
def dlq_replay(message_id: str | None, replay_all: bool) -> None:
    """Enqueue a dead letter again with fresh retries and remove it; replaying twice does nothing more."""
    from adapters.queue import dead_letters

    if bool(message_id) == replay_all:
        raise click.UsageError("give either MESSAGE_ID or --all")
    try:
        broker = _broker()
        if replay_all:
            click.echo(f"replayed {dead_letters.replay_all(broker)} dead letters")
            return
        assert message_id is not None  # noqa: S101  (checked above; narrows the type)
        if not dead_letters.replay(broker, message_id):
            raise click.ClickException(f"no dead letter {message_id} (already replayed, expired, or unknown)")
    except dead_letters.DeadLetterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"replayed {message_id}")
