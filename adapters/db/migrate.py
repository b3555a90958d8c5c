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
