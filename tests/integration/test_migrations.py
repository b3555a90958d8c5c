from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from adapters.db.migrate import upgrade
from adapters.db.models import ServiceSetting
from tests.fakes import migrated

TABLES = {"users", "recovery_attempts", "decisions", "reset_tokens", "outgoing_mail", "service_settings"}


def test_migrations_run_from_empty_and_again(database_url: str) -> None:
    engine = migrated(database_url).engine
    upgrade(engine)  # idempotent: already at head
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        key = connection.scalar(select(ServiceSetting.value).where(ServiceSetting.key == "audit_pseudonym_key"))
    assert key is not None and len(key) == 64


def test_postgres_refuses_changes_to_the_audit_log(postgres_url: str) -> None:
    engine = migrated(postgres_url).engine
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO recovery_attempts (id, client_reference_id, kind, status, flow, created_at) "
                "VALUES ('a1', 'a1', 'forgot_password', 'denied', '[]', now())"
            )
        )
        connection.execute(
            text(
                "INSERT INTO decisions (id, decided_at, attempt_id, session_id, outcome, reason, rules_version, "
                "prev_hash, hash) VALUES (1, now(), 'a1', 's1', 'denied', 'no_face', '1', 'p', 'h')"
            )
        )
    for statement in ("UPDATE decisions SET reason = 'verified'", "DELETE FROM decisions"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT reason FROM decisions")) == "no_face"
