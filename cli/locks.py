"""`users locks` and `users unlock ID`: the per-account recovery lock, as operators see and lift it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from cli import database, load_settings
from cli.audit import operator
from config import Settings

if TYPE_CHECKING:
    from domain.lock import LockPolicy


def _lock_policy(settings: Settings) -> LockPolicy:
    from domain.lock import LockPolicy

    return LockPolicy(settings.recovery_lock_threshold, settings.recovery_lock_window)


@click.command("locks")
def users_locks() -> None:
    """Users whose recoveries are locked after repeated refused attempts, and until when."""
    from domain.times import format_time
    from usecases.locks import locked_users

    settings = load_settings()
    found = locked_users(database(settings), operator(), _lock_policy(settings), datetime.now(UTC))
    click.echo("userId  lockedUntil  refusals")
    for user in found:
        click.echo(f"{user.user_id}  {format_time(user.locked_until)}  {user.refusals}")
    click.echo(f"({len(found)} locked)")


@click.command("unlock")
@click.argument("user_id")
def users_unlock(user_id: str) -> None:
    """Lift a user's recovery lock: their earlier refused attempts stop counting."""
    from usecases.locks import UnknownUser, unlock

    settings = load_settings()
    try:
        lifted = unlock(database(settings), operator(), user_id, _lock_policy(settings), datetime.now(UTC))
    except UnknownUser:
        raise click.ClickException(f"no user with id {user_id}") from None
    click.echo(f"unlocked {user_id}" if lifted else f"{user_id} is not locked; nothing to do")
