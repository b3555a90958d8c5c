"""Run the Alembic migrations programmatically (for `db upgrade`, `serve` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from adapters.db.deadline import UNBOUNDED
from adapters.db.engine import Database


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    url = db.engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    config = alembic_config(db)
    # A migration may rewrite a large table: no statement timeout, no client deadline.
    with db.engine.execution_options(**{UNBOUNDED: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_revisions(db: Database) -> tuple[str | None, tuple[str, ...]]:
    """(the database's Alembic revision or None when never migrated, the code's head revisions)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = tuple(ScriptDirectory.from_config(alembic_config(db)).get_heads())
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, heads


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database that does not exist (connecting would create it empty), else None."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return None if Path(parsed.database).exists() else parsed.database
