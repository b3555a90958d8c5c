"""Logs for people and for machines: JSON lines or console lines with the same fields, no secrets.

Every line about a session carries `session_id`, and `attempt_id` and `event_id` where they are
known (`log_context`). `LOG_FORMAT` picks `json` (one object per line) or `console` (a line a person
reads); unset, a terminal gets `console` and anything else `json`. `configure()` is called by the CLI;
worker processes started by Dramatiq's supervisor get it from the `LogsAtBoot` middleware, because
Dramatiq sets up their logging itself before our code runs.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from dramatiq.middleware import Middleware
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "console")
CONTEXT_FIELDS = ("session_id", "attempt_id", "event_id")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("facesign_log_context", default=None)

# What must never reach a log line, whatever a developer passes to it: emails (personal data),
# reset links' tokens, bearer keys and webhook signatures.
_REDACTIONS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"(token=)[\w.~%-]+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(bearer\s+)\S+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(v1=)[0-9a-f]+", re.IGNORECASE), r"\1<redacted>"),
)
FIELDS = "%(levelname)s %(name)s %(message)s"
# A record's own attributes; anything else on it is a field (the context's ids, a caller's `extra=`).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
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
    return None if value is None else _cut(value)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_ID_LENGTH else value[:MAX_ID_LENGTH] + "…"


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Every record logged inside carries these ids (None ones are left out, long ones cut), in this
    thread or task only; contexts nest, the inner adding to the outer."""
    known = {name: _cut(value) for name, value in ids.items() if value is not None}
    token = _context.set({**(_context.get() or {}), **known})
    try:
        yield
    finally:
        _context.reset(token)


def session_context(session_id: str | None) -> AbstractContextManager[None]:
    """Every record logged inside carries `session_id`."""
    return log_context(session_id=session_id)


class ContextAndRedaction(logging.Filter):
    """Adds the context's ids and scrubs the rendered message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.msg = redact(record.getMessage())
        record.args = None
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields beyond time, level, logger and message: the ids first, then the rest by name."""
    extra = {name: value for name, value in record.__dict__.items() if name not in _STANDARD}
    ordered = {name: extra.pop(name) for name in CONTEXT_FIELDS if name in extra}
    return {**ordered, **dict(sorted(extra.items()))}


class ConsoleFormatter(logging.Formatter):
    """`2026-11-19 08:00:00.123Z INFO  usecases.decide  message  session_id=… attempt_id=…`, UTC."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z"
        pairs = "".join(f"  {name}={value}" for name, value in fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}  {record.getMessage()}{pairs}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def resolve_format(configured: str | None, stream: Any = None) -> str:
    """LOG_FORMAT when set, else `console` on a terminal and `json` anywhere else."""
    if configured:
        return configured
    isatty = getattr(stream or sys.stderr, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


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


def formatter(log_format: str = "json") -> logging.Formatter:
    if log_format == "console":
        return ConsoleFormatter()
    return JsonFormatter(FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp="time")


def configure(level: int = logging.INFO, stream: Any = None, log_format: str | None = None) -> None:
    """The format on every root handler (adding one on stderr when there is none), idempotently."""
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    chosen = resolve_format(log_format, stream)
    for handler in root.handlers:
        handler.setFormatter(formatter(chosen))
        if not any(isinstance(f, ContextAndRedaction) for f in handler.filters):
            handler.addFilter(ContextAndRedaction())


class LogsAtBoot(Middleware):
    """Sets a Dramatiq worker process's log format once Dramatiq has set up its own handlers.

    The supervisor pipes its processes' output, so they cannot see a terminal: `worker` resolves the
    format before it starts them and hands it down.
    """

    def __init__(self, log_format: str | None = None) -> None:
        self.log_format = log_format

    def after_process_boot(self, broker: Any) -> None:
        configure(logging.getLogger().level or logging.INFO, log_format=self.log_format or "json")
