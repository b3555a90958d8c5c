"""Re-checking the audit log's hash chain, one record at a time, in constant memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.audit_chain import GENESIS, chain_hash


@dataclass(frozen=True)
class Anchor:
    """The head of the chain as someone wrote it down earlier: the row count and that row's hash."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        count, sep, digest = text.strip().partition(":")
        if not sep or not count.isdigit() or int(count) < 1 or len(digest) != 64:
            raise ValueError(f"not an anchor (COUNT:HASH, as `audit anchor` prints it): {text!r}")
        try:
            int(digest, 16)
        except ValueError:
            raise ValueError(f"not an anchor (the hash is not hex): {text!r}") from None
        return cls(int(count), digest.lower())


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int  # chain length up to the last row read, archived rows included
    head: str  # hash of the last good row (GENESIS when there is none)
    bad_id: Any = None  # the id of the first row that fails, or None
    problem: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"chain intact: {self.count} rows, head {self.head}"
        where = f"row {self.bad_id}" if self.bad_id is not None else "end of log"
        return f"chain broken at {where}: {self.problem}"


def verify(records: Iterable[Mapping[str, Any]], anchor: Anchor | None = None, start: Anchor | None = None) -> Verdict:
    """Walk records in chain order; the first row whose position, link or hash is wrong is named.

    An edited field changes that row's hash; a deleted row leaves a gap in the ids and a dangling
    link; an inserted row breaks the next row's link (or its own id); a swapped pair breaks both
    ids and links. Truncation from the end is only visible against an anchor.

    `start` is the anchor of an archive whose rows were removed from the front: the records then
    continue that chain, with row ids counting on from it.
    """
    prev, count = (start.hash, start.count) if start else (GENESIS, 0)
    for record in records:
        expected_id = count + 1
        count += 1
        row_id = record.get("id")
        if row_id != expected_id:
            return Verdict(False, count, prev, row_id, f"id is {row_id}, expected {expected_id} (missing or moved row)")
        if record.get("prevHash") != prev:
            return Verdict(False, count, prev, row_id, "prevHash does not match the previous row's hash")
        if chain_hash(prev, record) != record.get("hash"):
            return Verdict(False, count, prev, row_id, "hash does not match the row's content")
        prev = str(record["hash"])
        if anchor is not None and count == anchor.count and prev != anchor.hash:
            return Verdict(False, count, prev, row_id, "hash differs from the anchor's")
    if anchor is not None and count < anchor.count:
        return Verdict(False, count, prev, None, f"{count} rows but the anchor recorded {anchor.count}: truncated")
    return Verdict(True, count, prev)
