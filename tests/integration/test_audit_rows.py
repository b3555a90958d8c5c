"""The bulk generator (bench/audit_rows.py, shared by these tests and `make bench`) writes rows that
`audit verify` accepts, continuing whatever chain is already there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from adapters.db.models import Decision, RecoveryAttempt
from bench.audit_rows import START, chained_rows, fill
from cli import main
from tests.fakes import migrated

__all__ = ["START", "chained_rows", "cli", "fill"]


def cli(database_url: str, *args: str) -> Any:
    env = {"DATABASE_URL": database_url, "AUDIT_PSEUDONYM_KEY": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_bulk_rows_form_a_chain_the_verifier_accepts(database_url: str) -> None:
    engine = migrated(database_url).engine
    fill(engine, 120)
    fill(engine, 30, start=START + timedelta(days=1))  # continues from the head
    result = cli(database_url, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("150 rows, chain intact")
    with engine.connect() as session:
        assert session.scalar(select(Decision.prev_hash).where(Decision.id == 121)) == session.scalar(
            select(Decision.hash).where(Decision.id == 120)
        )
        # every attempt started before its decision and carries the flow the decision page draws
        started, decided, flow = session.execute(
            select(RecoveryAttempt.created_at, RecoveryAttempt.decided_at, RecoveryAttempt.flow).where(
                RecoveryAttempt.id == "att_7"
            )
        ).one()
    assert started < decided and any(node["type"] == "recognition" for node in flow)
