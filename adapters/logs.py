"""Structured JSON logs: one object per line, the session id on every line about a session, no secrets.

`configure()` is called by the CLI; worker processes started by Dramatiq's supervisor get it from
the `JsonLogsAtBoot` middleware, because Dramatiq sets up their logging itself before our code runs.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dramatiq.middleware import Middleware
from pythonjsonlogger.json import JsonFormatter

_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("facesign_session_id", default=None)

# What must never reach a log line, whatever a developer passes to it: emails (personal data),
# reset links' tokens, bearer keys and webhook signatures.
_REDACTIONS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"(token=)[\w.~%-]+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(bearer\s+)\S+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(v1=)[0-9a-f]+", re.IGNORECASE), r"\1<redacted>"),
)
FIELDS = "%(levelname)s %(name)s %(message)s"
# Ids we log (sessions, events) are short; a longer one came from outside and is cut to this.
MAX_ID_LENGTH = 64
_LONG_RUN = re.compile(rf"(\S{{{MAX_ID_LENGTH}}})\S{{{MAX_ID_LENGTH + 1},}}")


def redact(text: str) -> str:
    # Long runs first: a signed 200 KB session id is not worth 200 KB of log, and the patterns below
    # backtrack over a run's length for every position in it.
    if len(text) > 2 * MAX_ID_LENGTH:
        text = _LONG_RUN.sub(r"\1…", text)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def short_id(value: str | None) -> str | None:
    """An id as we log it: at most MAX_ID_LENGTH characters, the rest marked as cut."""
    if value is None or len(value) <= MAX_ID_LENGTH:
        return value
    return value[:MAX_ID_LENGTH] + "…"


@contextmanager
def session_context(session_id: str | None) -> Iterator[None]:
    """Every record logged inside carries `session_id`, in this thread or task only."""
    token = _session_id.set(short_id(session_id))
    try:
        yield
    finally:
        _session_id.reset(token)


class SessionAndRedaction(logging.Filter):
    """Adds `session_id` from the context and scrubs the rendered message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        session_id = _session_id.get()
        if session_id is not None and not hasattr(record, "session_id"):
            record.session_id = session_id
        record.msg = redact(record.getMessage())
        record.args = None
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class ArgumentRedaction(logging.Filter):
    """Scrubs a record's arguments in place, keeping their shape: uvicorn's access formatter unpacks
    (client, method, path, version, status) from them, and the path may carry a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact(record.msg)
        return True


SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_server_logs() -> None:
    """However the app is started (`serve`, `uvicorn receiver.app:app`, gunicorn with uvicorn workers),
    the server's own access and error lines are scrubbed; idempotent."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ArgumentRedaction) for f in logger.filters):
            logger.addFilter(ArgumentRedaction())


def formatter() -> logging.Formatter:
    return JsonFormatter(FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp="time")


def configure(level: int = logging.INFO, stream: Any = None) -> None:
    """JSON on every root handler (adding one on stderr when there is none), idempotently."""
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter())
        if not any(isinstance(f, SessionAndRedaction) for f in handler.filters):
            handler.addFilter(SessionAndRedaction())


class JsonLogsAtBoot(Middleware):
    """Switches a Dramatiq worker process to JSON logs once Dramatiq has set up its own handlers."""

    def after_process_boot(self, broker: Any) -> None:
        configure(logging.getLogger().level or logging.INFO)
