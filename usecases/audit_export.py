"""The dashboard's export: every record matching the filters as CSV or JSON lines, streamed in chunks.

The records are written by the one writer (`audit_formats.write_records`) in a thread of their own,
into a small bounded queue that the HTTP response drains: memory holds a few chunks whatever the size
of the log, and a reader that goes away stops the writer at its next chunk.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator

from adapters.db import audit_log
from adapters.db.audit_log import Filters
from adapters.db.engine import Database
from usecases.audit import record_access
from usecases.audit_formats import write_records

CHUNK = 64 * 1024  # characters per chunk handed to the response
QUEUED = 8  # chunks written ahead of the reader at most
_DONE = object()


class _ReaderGone(Exception):
    """The response stopped reading: the writer stops too."""


class _Pipe(io.StringIO):
    def __init__(self, chunks: queue.Queue[object], gone: threading.Event) -> None:
        super().__init__()
        self.chunks, self.gone = chunks, gone
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= CHUNK:
            self.hand_over()
        return len(text)

    def hand_over(self, item: object = None) -> None:
        if self.parts:
            self.put("".join(self.parts).encode("utf-8"))
            self.parts, self.size = [], 0
        if item is not None:
            self.put(item)

    def put(self, item: object) -> None:
        while not self.gone.is_set():
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _ReaderGone


def export_chunks(db: Database, who: str, filters: Filters, fmt: str) -> Iterator[bytes]:
    """The export as byte chunks. The access is recorded now, before anything is read or sent."""
    record_access(db, who, "export", {**filters.as_dict(), "format": fmt})
    return _chunks(db, filters, fmt)


def _chunks(db: Database, filters: Filters, fmt: str) -> Iterator[bytes]:
    chunks: queue.Queue[object] = queue.Queue(maxsize=QUEUED)
    gone = threading.Event()
    pipe = _Pipe(chunks, gone)

    def produce() -> None:
        try:
            with db.reading() as session:
                write_records(audit_log.records(session, filters), fmt, pipe)
            pipe.hand_over(_DONE)
        except _ReaderGone:
            return
        except BaseException as exc:  # handed to the reader, which raises it in the response
            try:
                pipe.put(exc)
            except _ReaderGone:
                return

    writer = threading.Thread(target=produce, name="audit-export", daemon=True)
    writer.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)  # noqa: S101
            yield item
    finally:
        gone.set()
