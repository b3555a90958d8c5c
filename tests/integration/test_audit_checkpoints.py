"""Checkpoints make verification grow with new rows; a forged one fools only the quick check, never the
full verification nor the anchors kept outside the database."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Engine, insert, text

from adapters.db.models import AuditCheckpoint
from bench.audit_rows import fill
from cli import main
from domain.audit_chain import chain_hash
from tests.fakes import migrated
from tests.integration.test_audit_tamper import tamper
from usecases.audit_verification import chain_status, verify_full


def run(url: str, *args: str, **env: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url, "AUDIT_PSEUDONYM_KEY": "", **env})


def forge_checkpoint(engine: Engine, head_id: int) -> None:
    """What an administrator with write access can do: claim the chain was fully verified, up to now."""
    with engine.begin() as connection:
        head = connection.execute(text("SELECT hash FROM decisions WHERE id = :i"), {"i": head_id}).scalar_one()
        connection.execute(
            insert(AuditCheckpoint).values(
                head_id=head_id,
                head_hash=head,
                started_after=0,
                rows=head_id,
                kind="full",
                ok=True,
                detail=f"chain intact: {head_id} rows, head {head}",
                verified_at=datetime.now(UTC),
                verified_by="audit verify (cli:auditor) on auditbox pid 1",
                seconds=0.5,
            )
        )


def rewrite_from(engine: Engine, row_id: int, last_id: int) -> None:
    """A forger who knows the algorithm: change a row, then recompute every hash after it."""
    with engine.begin() as connection:
        rows = (
            connection.execute(text("SELECT * FROM decisions WHERE id >= :i ORDER BY id"), {"i": row_id})
            .mappings()
            .all()
        )
        prev = connection.execute(text("SELECT hash FROM decisions WHERE id = :i"), {"i": row_id - 1}).scalar_one()
    updates = []
    for row in rows:
        record = {
            "id": row["id"],
            "decidedAt": row["decided_at"]
            if isinstance(row["decided_at"], datetime)
            else datetime.fromisoformat(str(row["decided_at"])),
            "attemptId": row["attempt_id"],
            "sessionId": row["session_id"],
            "clientReferenceId": row["client_reference_id"],
            "outcome": "approved" if row["id"] == row_id else row["outcome"],
            "reason": "verified" if row["id"] == row_id else row["reason"],
            "sessionStatus": row["session_status"],
            "recognition": row["recognition"],
            "liveness": row["liveness"],
            "conversation": row["conversation"],
            "matchedUserId": row["matched_user_id"],
            "emailDigest": row["email_digest"],
            "rulesVersion": row["rules_version"],
            "eventId": row["event_id"],
            "messageId": row["message_id"],
        }
        digest = chain_hash(prev, record)
        updates.append({"i": row["id"], "o": record["outcome"], "r": record["reason"], "p": prev, "h": digest})
        prev = digest

    def apply(connection: Any) -> None:
        # hashes are unique: park them first, so that no two rows hold one hash at once on the way
        connection.execute(
            text("UPDATE decisions SET hash = 'x' || id, prev_hash = 'y' || id WHERE id >= :i"), {"i": row_id}
        )
        for values in updates:
            connection.execute(
                text("UPDATE decisions SET outcome = :o, reason = :r, prev_hash = :p, hash = :h WHERE id = :i"), values
            )

    tamper(engine, apply)
    assert last_id == updates[-1]["i"]


def test_incremental_verification_reads_only_the_rows_after_the_checkpoint(database_url: str) -> None:
    engine = migrated(database_url).engine
    fill(engine, 40)
    full = run(database_url, "audit", "verify")
    assert full.exit_code == 0 and full.stdout.startswith("40 rows, chain intact")
    fill(engine, 5)
    quick = run(database_url, "audit", "verify", "--since-checkpoint")
    assert quick.exit_code == 0, quick.output
    assert quick.stdout.startswith("5 rows after checkpoint 1 (row 40,")
    again = run(database_url, "audit", "verify", "--since-checkpoint")  # continues from the one just noted
    assert again.stdout.startswith("0 rows after checkpoint 2 (row 45,")
    # a rewrite reaching back to the checkpoint's own row is caught: that row is re-read first
    tamper(engine, lambda c: c.execute(text("UPDATE decisions SET hash = :h WHERE id = 45"), {"h": "e" * 64}))
    broken = run(database_url, "audit", "verify", "--since-checkpoint")
    assert broken.exit_code == 1 and "row 45 no longer has the hash it had when checkpoint" in broken.output


def test_a_forged_checkpoint_is_caught_by_the_next_full_verification_and_by_the_anchors(
    database_url: str, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    sink = {"AUDIT_ANCHOR_SINK": str(anchors)}
    db = migrated(database_url)
    fill(db.engine, 30)
    assert run(database_url, "audit", "anchor", **sink).exit_code == 0  # 30:… kept outside the database
    fill(db.engine, 10)
    assert run(database_url, "audit", "verify", **sink).exit_code == 0  # 40:… too
    assert [json.loads(line)["count"] for line in anchors.read_text().splitlines()] == [30, 40]

    # tamper with row 12, then claim in the database that the chain was verified after that
    tamper(
        db.engine,
        lambda c: c.execute(text("UPDATE decisions SET outcome = 'approved', reason = 'verified' WHERE id = 12")),
    )
    forge_checkpoint(db.engine, 40)
    fooled = chain_status(db)  # the quick check trusts the checkpoint: nothing after row 40 to read
    assert fooled.incremental.verdict.ok and fooled.last_full is not None and fooled.last_full.ok
    assert run(database_url, "audit", "verify", "--since-checkpoint").exit_code == 0

    full = run(database_url, "audit", "verify")
    assert full.exit_code == 1 and "chain broken at row 12: hash does not match the row's content" in full.output
    against = run(database_url, "audit", "verify", "--anchors", str(anchors))
    assert against.exit_code == 1 and "row 12" in against.output
    after = chain_status(db)  # the failed full verification is what the dashboard now shows
    assert after.last_full is not None and not after.last_full.ok and after.last_full.bad_id == 12


def test_a_rewritten_and_rehashed_chain_passes_alone_but_not_against_the_anchors(
    database_url: str, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    db = migrated(database_url)
    fill(db.engine, 20)
    assert run(database_url, "audit", "anchor", AUDIT_ANCHOR_SINK=str(anchors)).exit_code == 0
    fill(db.engine, 5)
    rewrite_from(db.engine, 8, 25)
    forge_checkpoint(db.engine, 25)
    alone = run(database_url, "audit", "verify")
    assert alone.exit_code == 0  # internally consistent: only something kept elsewhere can tell
    against = run(database_url, "audit", "verify", "--anchors", str(anchors))
    assert against.exit_code == 1, against.output
    assert "chain broken at row 20: hash differs from the anchor's (anchors.jsonl line 1, written" in against.output
    assert "rewritten" in against.output


def test_truncation_is_named_against_the_anchors_file(database_url: str, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    engine = migrated(database_url).engine
    fill(engine, 10)
    assert run(database_url, "audit", "anchor", AUDIT_ANCHOR_SINK=str(anchors)).exit_code == 0
    tamper(engine, lambda c: c.execute(text("DELETE FROM decisions WHERE id > 7")))
    result = run(database_url, "audit", "verify", "--anchors", str(anchors))
    assert result.exit_code == 1 and "7 rows but the anchor recorded 10 (anchors.jsonl line 1" in result.output


def test_verifying_never_holds_the_sqlite_write_lock_while_it_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db"
    db = migrated(url)
    fill(db.engine, 50)
    holder = db.engine.raw_connection()
    holder.execute("BEGIN IMMEDIATE")  # a decision being written, holding SQLite's one write lock
    found: list[Any] = []
    reader = threading.Thread(target=lambda: found.extend([verify_full(db), chain_status(db)]))
    reader.start()
    reader.join(10)
    alive = reader.is_alive()
    holder.rollback()
    holder.close()
    reader.join()
    assert not alive, "verification waited for the write lock"
    assert found[0].verdict.ok and found[1].incremental.verdict.count == 50
