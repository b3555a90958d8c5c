"""The pure chain verifier: every kind of tampering is named at the first row it affects."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.audit_chain import GENESIS, chain_hash
from domain.audit_verify import Anchor, verify


def chain(count: int) -> list[dict[str, Any]]:
    rows, prev = [], GENESIS
    for row_id in range(1, count + 1):
        record: dict[str, Any] = {
            "id": row_id,
            "decidedAt": f"2026-11-01T00:00:{row_id:02d}.000000Z",
            "sessionId": f"sess_{row_id}",
            "attemptId": f"att_{row_id}",
            "outcome": "denied",
            "reason": "liveness_failed",
            "rulesVersion": "1",
        }
        record["prevHash"], record["hash"] = prev, chain_hash(prev, record)
        prev = record["hash"]
        rows.append(record)
    return rows


def rehash_from(rows: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """What a careful forger does after a change: recompute every later link and hash."""
    prev = rows[index - 1]["hash"] if index else GENESIS
    for row in rows[index:]:
        row["prevHash"], row["hash"] = prev, chain_hash(prev, row)
        prev = row["hash"]
    return rows


def test_an_intact_chain_passes_with_its_count_and_head() -> None:
    rows = chain(5)
    verdict = verify(rows)
    assert verdict.ok and verdict.count == 5 and verdict.head == rows[-1]["hash"]
    assert "5 rows" in verdict.describe()


def test_an_empty_log_is_intact() -> None:
    verdict = verify([])
    assert verdict.ok and verdict.count == 0 and verdict.head == GENESIS


def test_it_reads_a_one_shot_iterator_once() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield from chain(1000)

    assert verify(stream()).count == 1000


def test_an_edited_field_is_named() -> None:
    rows = chain(5)
    rows[2]["outcome"] = "approved"
    verdict = verify(rows)
    assert not verdict.ok and verdict.bad_id == 3 and "content" in verdict.problem
    assert "row 3" in verdict.describe()


def test_an_edited_hash_breaks_the_next_link() -> None:
    rows = chain(5)
    rows[1]["hash"] = "f" * 64
    assert verify(rows).bad_id == 2


@pytest.mark.parametrize(("index", "named"), [(0, 2), (2, 4), (3, 5)])
def test_a_deleted_row_is_named(index: int, named: int) -> None:
    rows = chain(5)
    del rows[index]
    verdict = verify(rows)
    assert not verdict.ok and verdict.bad_id == named


def test_a_deleted_middle_row_is_caught_even_when_the_rest_is_rehashed() -> None:
    rows = chain(5)
    del rows[2]
    verdict = verify(rehash_from(rows, 2))
    assert not verdict.ok and verdict.bad_id == 4 and "missing" in verdict.problem


def test_an_inserted_row_is_named() -> None:
    rows = chain(5)
    forged = {**rows[2], "id": 3, "sessionId": "sess_forged"}
    forged["hash"] = chain_hash(forged["prevHash"], forged)
    rows.insert(2, forged)
    verdict = verify(rows)
    assert not verdict.ok and verdict.bad_id == 3  # the original row 3 no longer links to the forged one


def test_an_inserted_row_with_a_new_id_is_named() -> None:
    rows = chain(5)
    forged = {**rows[1], "id": 99}
    rows.insert(2, forged)
    assert verify(rows).bad_id == 99


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (3, 4)])
def test_a_swapped_pair_is_named(pair: tuple[int, int]) -> None:
    rows = chain(5)
    a, b = pair
    rows[a], rows[b] = rows[b], rows[a]
    verdict = verify(rows)
    assert not verdict.ok and verdict.bad_id == b + 1  # the later row, now first, is out of place


def test_swapped_contents_under_kept_ids_are_named() -> None:
    rows = chain(5)
    for key in ("sessionId", "attemptId"):
        rows[1][key], rows[2][key] = rows[2][key], rows[1][key]
    assert verify(rows).bad_id == 2


def test_truncation_passes_alone_and_fails_against_an_anchor() -> None:
    rows = chain(5)
    anchor = Anchor(5, rows[-1]["hash"])
    assert verify(rows[:3]).ok  # nothing inside the rows can tell: this is what the anchor is for
    verdict = verify(rows[:3], anchor)
    assert not verdict.ok and "truncated" in verdict.problem and verdict.bad_id is None


def test_an_anchor_matches_a_grown_chain_and_catches_a_rewritten_one() -> None:
    rows = chain(8)
    assert verify(rows, Anchor(5, rows[4]["hash"])).ok
    rewritten = rehash_from(chain(8), 0)
    rewritten[1]["reason"] = "verified"
    rehash_from(rewritten, 1)
    verdict = verify(rewritten, Anchor(5, rows[4]["hash"]))
    assert not verdict.ok and verdict.bad_id == 5 and "anchor" in verdict.problem


def test_anchor_round_trip_and_rejects() -> None:
    anchor = Anchor(12, "ab" * 32)
    assert Anchor.parse(str(anchor)) == anchor
    assert Anchor.parse(f" 12:{'AB' * 32}\n") == anchor
    for text in ("", "12", "x:" + "a" * 64, "0:" + "a" * 64, "3:abc", "3:" + "g" * 64):
        with pytest.raises(ValueError):
            Anchor.parse(text)


def test_a_table_that_continues_an_archive_verifies_from_the_archives_anchor() -> None:
    rows = chain(8)
    archived, kept = rows[:5], rows[5:]
    start = Anchor(5, archived[-1]["hash"])
    assert not verify(kept).ok  # alone, the kept rows look like a log with its start deleted
    verdict = verify(kept, start=start)
    assert verdict.ok and verdict.count == 8 and verdict.head == rows[-1]["hash"]
    assert verify(kept[1:], start=start).bad_id == 7
    assert not verify(kept, start=Anchor(5, "0" * 64)).ok


@settings(max_examples=150, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=25),
    data=st.data(),
    field=st.sampled_from(["decidedAt", "sessionId", "attemptId", "outcome", "reason", "rulesVersion"]),
    value=st.text(min_size=1, max_size=12),
)
def test_any_single_edit_is_named_at_its_row(length: int, data: st.DataObject, field: str, value: str) -> None:
    rows = chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1))
    if unicodedata.normalize("NFC", value) == unicodedata.normalize("NFC", rows[index][field]):
        return  # not an edit under the canonical form
    rows[index][field] = value
    assert verify(rows).bad_id == index + 1


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=20))
def test_a_store_that_renormalises_unicode_raises_no_false_alarm(text: str) -> None:
    rows = chain(3)
    rows[1]["sessionId"] = unicodedata.normalize("NFC", text)
    rehash_from(rows, 1)
    rows[1]["sessionId"] = unicodedata.normalize("NFD", text)  # what a database might hand back
    assert verify(rows).ok


def test_every_anchor_is_checked_and_the_first_contradicted_is_named() -> None:
    rows = chain(10)
    anchors = [
        Anchor(3, rows[2]["hash"], "anchors.jsonl line 1"),
        Anchor(6, rows[5]["hash"], "anchors.jsonl line 2"),
        Anchor(9, rows[8]["hash"], "anchors.jsonl line 3"),
    ]
    assert verify(rows, anchors=anchors).ok
    rewritten = rehash_from(chain(10), 0)
    rewritten[4]["outcome"] = "approved"  # row 5 changed, every later hash recomputed by the forger
    rehash_from(rewritten, 4)
    verdict = verify(rewritten, anchors=list(reversed(anchors)))  # file order does not matter
    assert not verdict.ok and verdict.bad_id == 6 and verdict.anchor == anchors[1]
    assert "anchors.jsonl line 2" in verdict.describe() and "rewritten" in verdict.describe()


def test_truncation_names_the_first_anchor_beyond_the_end() -> None:
    rows = chain(10)
    anchors = [
        Anchor(4, rows[3]["hash"], "a line 1"),
        Anchor(8, rows[7]["hash"], "a line 2"),
        Anchor(10, rows[9]["hash"]),
    ]
    verdict = verify(rows[:6], anchors=anchors)
    assert not verdict.ok and verdict.anchor == anchors[1] and verdict.count == 6
    assert (
        verdict.describe()
        == f"chain broken at end of log: 6 rows but the anchor recorded 8 (a line 2: {anchors[1]}): truncated"
    )


def test_anchors_before_a_starting_point_are_not_rechecked() -> None:
    rows = chain(6)
    start = Anchor(3, rows[2]["hash"])
    verdict = verify(rows[3:], start=start, anchors=[Anchor(2, "f" * 64), Anchor(5, rows[4]["hash"])])
    assert verdict.ok and verdict.count == 6
