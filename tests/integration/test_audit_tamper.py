"""`audit verify` on real databases catches every kind of tampering, naming the first bad row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from tests.fakes import migrated
from tests.integration.test_audit_rows import cli, fill


def setup(database_url: str, rows: int = 8) -> Engine:
    engine = migrated(database_url).engine
    fill(engine, rows)
    return engine


def tamper(engine: Engine, action: Callable[[Connection], None]) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # The service's own trigger refuses UPDATE and DELETE; a forger with superuser rights can switch
            # it off, and that forger is who these tests play.
            connection.execute(text("ALTER TABLE decisions DISABLE TRIGGER decisions_append_only"))
        action(connection)


def move_ids(connection: Connection, from_id: int, by: int) -> None:
    """Renumber rows from `from_id` on in two steps, so that no id collides on the way."""
    connection.execute(text("UPDATE decisions SET id = id + 100000 WHERE id >= :f"), {"f": from_id})
    connection.execute(text("UPDATE decisions SET id = id - 100000 + :by WHERE id >= 100000"), {"by": by})


def edit(connection: Connection) -> None:
    connection.execute(text("UPDATE decisions SET outcome = 'approved', reason = 'verified' WHERE id = 4"))


def delete(connection: Connection) -> None:
    connection.execute(text("DELETE FROM decisions WHERE id = 5"))


def insert(connection: Connection) -> None:
    move_ids(connection, 4, 1)
    connection.execute(
        text(
            "INSERT INTO decisions (id, decided_at, attempt_id, session_id, outcome, reason, rules_version, "
            "prev_hash, hash) SELECT 4, decided_at, 'att_forged', 'sess_forged', 'approved', 'verified', '1', "
            ":p, :h FROM decisions WHERE id = 3"
        ),
        {"p": "a" * 64, "h": "b" * 64},
    )


def swap(connection: Connection) -> None:
    connection.execute(text("UPDATE decisions SET id = 100 WHERE id = 3"))
    connection.execute(text("UPDATE decisions SET id = 3 WHERE id = 4"))
    connection.execute(text("UPDATE decisions SET id = 4 WHERE id = 100"))


def attempt_for_insert(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO recovery_attempts (id, client_reference_id, kind, status, flow, created_at) "
            "SELECT 'att_forged', 'att_forged', kind, 'approved', flow, created_at "
            "FROM recovery_attempts WHERE id = 'att_1'"
        )
    )


@pytest.mark.parametrize(
    ("kind", "action", "named"),
    [
        ("edited field", edit, "row 4"),
        ("deleted row", delete, "row 6"),
        ("inserted row", insert, "row 4"),
        ("swapped pair", swap, "row 3"),
    ],
)
def test_verify_names_the_first_tampered_row(
    database_url: str, kind: str, action: Callable[[Connection], None], named: str
) -> None:
    engine = setup(database_url)
    assert cli(database_url, "audit", "verify").exit_code == 0
    if action is insert:
        tamper(engine, attempt_for_insert)
    tamper(engine, action)
    result = cli(database_url, "audit", "verify")
    assert result.exit_code == 1, f"{kind} went unnoticed: {result.output}"
    assert f"chain broken at {named}:" in result.output


def test_truncation_is_caught_by_the_anchor_only(database_url: str) -> None:
    engine = setup(database_url)
    anchored = cli(database_url, "audit", "anchor")
    assert anchored.exit_code == 0
    anchor = anchored.output.strip()
    assert anchor.startswith("8:")
    assert cli(database_url, "audit", "verify", "--anchor", anchor).exit_code == 0
    tamper(engine, lambda c: c.execute(text("DELETE FROM decisions WHERE id >= 7")))
    alone = cli(database_url, "audit", "verify")
    assert alone.exit_code == 0 and alone.output.startswith("6 rows")  # undetectable without the anchor
    against = cli(database_url, "audit", "verify", "--anchor", anchor)
    assert against.exit_code == 1 and "truncated" in against.output


def test_a_grown_chain_still_matches_an_older_anchor(database_url: str) -> None:
    engine = setup(database_url, rows=3)
    anchor = cli(database_url, "audit", "anchor").output.strip()
    fill(engine, 4)
    result = cli(database_url, "audit", "verify", "--anchor", anchor)
    assert result.exit_code == 0 and result.output.startswith("7 rows, chain intact and matching the anchor")


def test_postgres_refuses_edits_until_the_trigger_is_disabled(postgres_url: str) -> None:
    engine = setup(postgres_url, rows=5)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        edit(connection)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        delete(connection)


def test_after_archiving_and_removing_old_rows_the_rest_verifies_against_the_archive(
    database_url: str, tmp_path: Path
) -> None:
    engine = setup(database_url, rows=12)  # one row per second from 2026-11-01T00:00:00Z
    archive = tmp_path / "archive.jsonl"
    exported = cli(database_url, "audit", "export", "--before", "2026-11-01T00:00:05Z", "--output", str(archive))
    assert exported.exit_code == 0
    anchor = exported.stderr.strip().rsplit(" ", 1)[-1]
    assert anchor.startswith("5:")
    # What a retention policy's administrator does by hand: the service itself never deletes.
    tamper(engine, lambda c: c.execute(text("DELETE FROM decisions WHERE id <= 5")))
    assert cli(database_url, "audit", "verify").exit_code == 1
    rest = cli(database_url, "audit", "verify", "--continues", anchor)
    assert rest.exit_code == 0 and rest.stdout.startswith("7 rows after the archive's 5, chain intact"), rest.output
    assert cli(database_url, "audit", "verify", "--file", str(archive), "--anchor", anchor).exit_code == 0
