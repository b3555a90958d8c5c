"""A client-side deadline on PostgreSQL round trips, so that a hung database costs an error, not a thread.

`statement_timeout` is enforced by the server, and TCP keepalives notice a peer whose host is gone;
neither helps when the server (or a proxy before it) still holds the connection open but no longer
answers: the kernel acknowledges every packet and the client waits forever. So every statement,
commit, rollback and checkout ping arms a deadline (the statement timeout plus a margin); a watchdog
thread shuts the socket of a connection whose deadline passed. The waiting thread then sees the
connection closed, psycopg raises OperationalError, SQLAlchemy discards the connection, and the
caller's error handling (a 503, an actor retry, the reconciler's next pass) takes over.

Shutting a socket another thread waits on is the documented way to wake it (shutdown(2)); the
descriptor comes from psycopg's public `PGconn.socket`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, event, exc

log = logging.getLogger(__name__)

UNBOUNDED = "facesign_unbounded"  # execution option: statements of this connection have no deadline (migrations)
TICK = 0.25  # seconds between the watchdog's looks


class StatementDeadline:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._armed: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "commit", self._before_end)
        event.listen(engine, "rollback", self._before_end)
        event.listen(engine, "handle_error", self._on_error)
        event.listen(engine.pool, "checkout", self._ping_on_checkout)
        event.listen(engine.pool, "reset", lambda dbapi_connection, *_: self.arm(dbapi_connection))
        event.listen(engine.pool, "checkin", lambda dbapi_connection, *_: self.disarm(dbapi_connection))
        event.listen(engine.pool, "close", lambda dbapi_connection, *_: self.disarm(dbapi_connection))

    def arm(self, dbapi_connection: Any) -> None:
        if dbapi_connection is None:
            return
        with self._lock:
            self._armed[id(dbapi_connection)] = (time.monotonic() + self.limit, dbapi_connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="db-deadline", daemon=True)
                self._thread.start()

    def disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    # Engine events hand over SQLAlchemy's Connection; the DBAPI connection is what the watchdog cuts.
    def _before_execute(self, conn: Any, *_: Any) -> None:
        if not conn.get_execution_options().get(UNBOUNDED):
            self.arm(_dbapi(conn))

    def _after_execute(self, conn: Any, *_: Any) -> None:
        self.disarm(_dbapi(conn))

    def _before_end(self, conn: Any) -> None:
        if not conn.get_execution_options().get(UNBOUNDED):
            self.arm(_dbapi(conn))

    def _on_error(self, context: Any) -> None:
        if context.connection is not None:
            self.disarm(_dbapi(context.connection))

    def _ping_on_checkout(self, dbapi_connection: Any, *_: Any) -> None:
        """The pool's pre-ping, under the deadline (SQLAlchemy's own pre-ping runs outside every event).
        A failed ping makes the pool discard this connection and open a fresh one. Like SQLAlchemy's
        ping for psycopg, it runs in autocommit, so that it leaves no transaction open behind it (the
        caller may still choose an isolation level or autocommit for its own work)."""
        self.arm(dbapi_connection)
        autocommit = dbapi_connection.autocommit
        try:
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.autocommit = autocommit
        except Exception as error:
            raise exc.DisconnectionError(f"ping failed: {type(error).__name__}") from error
        finally:
            self.disarm(dbapi_connection)

    def _watch(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with self._lock:
                overdue = [(key, conn) for key, (due, conn) in self._armed.items() if due <= now]
                for key, _ in overdue:
                    del self._armed[key]
            for _, conn in overdue:
                _cut(conn)


def _dbapi(conn: Any) -> Any:
    """The DBAPI connection under a SQLAlchemy Connection; None once it was invalidated (nothing to guard)."""
    if conn.invalidated or conn.closed:
        return None
    return conn.connection.dbapi_connection


def _cut(dbapi_connection: Any) -> None:
    try:
        descriptor = dbapi_connection.pgconn.socket
    except Exception:  # already closed: nothing waits on it
        return
    log.warning("database round trip overdue: closing its connection")
    try:
        with socket.socket(fileno=os.dup(descriptor)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
