"""The database handle entry points hold: an engine, its sessions, and the two kinds of unit of work.

SQLite is tuned so that concurrent writers queue instead of failing: every writing transaction
starts with BEGIN IMMEDIATE (the database's one write lock, taken up front), while reads start a
deferred transaction, which in WAL mode never waits for or blocks a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from adapters.db.deadline import StatementDeadline
from config import Settings

__all__ = ["Database", "DatabaseUnavailable", "Session", "Timeouts", "make_engine"]  # Session: for use cases' hints

_READ_ONLY = "facesign_read_only"
# What a database that is down, hung, overloaded or out of connections raises: callers answer 503 or retry.
_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


class DatabaseUnavailable(Exception):
    """The database did not answer, or not in time; the request or message can be tried again later."""


@dataclass(frozen=True)
class Timeouts:
    """Bounded waits on PostgreSQL, in seconds (config.Settings holds the defaults operators change)."""

    connect: int = Settings.database_connect_timeout
    statement: int = Settings.database_statement_timeout
    keepalives_idle: int = Settings.database_keepalives_idle
    deadline_margin: float = 2.0  # the client cuts a round trip off this long after the server should have

    def connect_args(self) -> dict[str, Any]:
        probes, probe_interval = 3, 10
        return {
            "connect_timeout": self.connect,
            "options": f"-c statement_timeout={self.statement * 1000}",
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": probe_interval,
            "keepalives_count": probes,
            # Unacknowledged data gives up as soon as the keepalive probes would have.
            "tcp_user_timeout": (self.keepalives_idle + probe_interval * probes) * 1000,
        }

    @classmethod
    def of(cls, settings: Settings) -> Timeouts:
        return cls(
            settings.database_connect_timeout, settings.database_statement_timeout, settings.database_keepalives_idle
        )


def make_engine(url: str, timeouts: Timeouts | None = None, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _tune_sqlite(engine)
        return engine
    timeouts = timeouts or Timeouts()
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 10)
    kwargs.setdefault("connect_args", timeouts.connect_args())
    # No pool_pre_ping: the deadline pings on checkout itself, under its own bound.
    engine = create_engine(url, **kwargs)
    StatementDeadline(timeouts.statement + timeouts.deadline_margin).install(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, which lets two
    # writers read the same chain head; BEGIN IMMEDIATE takes the write lock up front instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """One per process and database URL. Use cases take it; only `adapters.db` looks inside."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)

    @classmethod
    def connect(cls, url: str, timeouts: Timeouts | None = None, **engine_options: Any) -> Database:
        return cls(make_engine(url, timeouts, **engine_options))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One writing unit of work: commit on success, roll back on any exception.

        Raises DatabaseUnavailable when the database is down, hung or out of connections."""
        try:
            with self._writer() as session, session.begin():
                yield session
        except _UNAVAILABLE as error:
            raise DatabaseUnavailable(type(error).__name__) from error

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only unit of work; on SQLite it never takes the write lock. Raises DatabaseUnavailable too."""
        try:
            with self._reader() as session, session.begin():
                yield session
        except _UNAVAILABLE as error:
            raise DatabaseUnavailable(type(error).__name__) from error

    def ping(self, timeout: float | None = None) -> None:
        """One query; with `timeout` (seconds), PostgreSQL gives up on it after that long."""
        with self.reading() as session:
            if timeout is not None and self.is_postgresql:
                session.execute(text(f"SET LOCAL statement_timeout = {int(timeout * 1000)}"))
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
