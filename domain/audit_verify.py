"""Re-checking the audit log's hash chain, one record at a time, in constant memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.audit_chain import GENESIS, chain_hash


@dataclass(frozen=True)
class Anchor:
    """The head of the chain as someone wrote it down earlier: the row count and that row's hash."""

    count: int
    hash: str
    source: str = field(default="", compare=False)  # where it was read, for messages: "anchors.jsonl line 3"

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
    anchor: Anchor | None = None  # the anchor the chain contradicts, when that is what failed

    def describe(self) -> str:
        if self.ok:
            return f"chain intact: {self.count} rows, head {self.head}"
        where = f"row {self.bad_id}" if self.bad_id is not None else "end of log"
        return f"chain broken at {where}: {self.problem}"


def _named(anchor: Anchor) -> str:
    return f" ({anchor.source}: {anchor})" if anchor.source else ""


def verify(
    records: Iterable[Mapping[str, Any]],
    anchor: Anchor | None = None,
    start: Anchor | None = None,
    anchors: Sequence[Anchor] = (),
) -> Verdict:
    """Walk records in chain order; the first row whose position, link or hash is wrong is named.

    An edited field changes that row's hash; a deleted row leaves a gap in the ids and a dangling
    link; an inserted row breaks the next row's link (or its own id); a swapped pair breaks both
    ids and links. Truncation from the end, or a chain rewritten and rehashed from some row on, is only
    visible against an anchor: each of `anchor` and `anchors` is checked at its row, and the first one
    contradicted (lowest count) is named.

    `start` is the anchor of an archive whose rows were removed from the front, or a checkpoint: the
    records then continue that chain, with row ids counting on from it. Anchors at or before it are
    not checked.
    """
    prev, count = (start.hash, start.count) if start else (GENESIS, 0)
    pending: dict[int, list[Anchor]] = {}
    for each in (anchor, *anchors):
        if each is not None and each.count > count:
            pending.setdefault(each.count, []).append(each)
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
        if pending and count in pending:
            for each in pending.pop(count):
                if each.hash != prev:
                    problem = f"hash differs from the anchor's{_named(each)}: rewritten"
                    return Verdict(False, count, prev, row_id, problem, each)
    if pending:
        first = pending[min(pending)][0]
        problem = f"{count} rows but the anchor recorded {first.count}{_named(first)}: truncated"
        return Verdict(False, count, prev, None, problem, first)
    return Verdict(True, count, prev)
