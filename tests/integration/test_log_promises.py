"""The audit log's promises hold against its own database: a dump maps no digest back to an address,
sent mails forget their address, client addresses are kept as keyed digests only, TRUNCATE is refused
and `db check-grants` tells whether the service's role could rewrite the log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient

from adapters.db.attempts import create_attempt
from adapters.db.models import Base, Decision, OutgoingMail, RecoveryAttempt, ResetToken
from adapters.db.pseudonyms import MissingPseudonymKey
from cli import main
from config import Settings
from domain import rules
from domain.audit_chain import address_digest, email_digest
from receiver.app import create_app
from tests.fakes import TEST_PSEUDONYM_KEY, append_decision, make_deps, make_services, migrated, seed_attempt
from tests.integration.test_redeem import issue
from usecases import decide
from usecases.send_mail import send_reset_email

EMAIL = "ada@example.com"


def dump(engine: Any) -> list[tuple[str, str, Any]]:
    """Every value of every table: what someone holding only a copy of the database holds."""
    found = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                found.extend((table.name, column, value) for column, value in row.items())
    return found


def test_a_database_dump_maps_no_digest_back_to_its_address(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))  # a production setup: the key is configured
    session_id = seed_attempt(deps, fake, email=EMAIL)
    result = decide.process_session_event(deps, session_id, "evt_1", "msg_1")
    assert result.status == "approved" and result.mail_id
    assert send_reset_email(deps, result.mail_id)

    values = dump(deps.db.engine)
    [digest] = [value for table, column, value in values if (table, column) == ("decisions", "email_digest")]
    assert digest == email_digest(TEST_PSEUDONYM_KEY.encode(), EMAIL)  # only the configured key makes it
    for _, _, value in values:
        if isinstance(value, str):
            assert email_digest(value.encode(), EMAIL) != digest, "a stored value is the pseudonym key"
    # The address lives in the directory only: the sent mail forgot it, and its link.
    places = {(table, column) for table, column, value in values if isinstance(value, str) and EMAIL in value.lower()}
    assert places == {("users", "email")}
    with deps.db.reading() as session:
        mail = session.scalars(select(OutgoingMail)).one()
    assert (mail.status, mail.to_address, mail.reset_url) == ("sent", None, None)


def test_outside_the_sandbox_the_stored_key_is_never_used(database_url: str, tmp_path: Path) -> None:
    deps, fake = make_deps(database_url, str(tmp_path / "mail"), audit_pseudonym_key=None)
    session_id = seed_attempt(deps, fake, email=EMAIL)
    with pytest.raises(MissingPseudonymKey, match="AUDIT_PSEUDONYM_KEY"):
        decide.process_session_event(deps, session_id, "evt_1", "msg_1")
    with deps.db.reading() as session:
        assert session.scalars(select(Decision)).all() == []
    sandbox, _ = make_deps(database_url, str(tmp_path / "mail"), audit_pseudonym_key=None, sandbox_mode=True)
    assert len(sandbox.digest_key()) == 64  # the sandbox's random key, kept in its database


def test_client_addresses_are_kept_as_keyed_digests(database_url: str) -> None:
    services = make_services(Settings(database_url=database_url))
    app = create_app(services)
    started = TestClient(app, client=("203.0.113.7", 40000)).post("/recoveries", json={})
    assert started.status_code == 201, started.text
    token = issue(services, attempt="att2")
    redeemed = TestClient(app, client=("198.51.100.23", 40000)).post("/reset-tokens/redeem", json={"token": token})
    assert redeemed.status_code == 200
    key = TEST_PSEUDONYM_KEY.encode()
    with services.deps.db.reading() as session:
        attempt = session.get(RecoveryAttempt, started.json()["id"])
        redeemed_token = session.scalars(select(ResetToken)).one()
    assert attempt is not None and attempt.client_digest == address_digest(key, "203.0.113.7")
    assert redeemed_token.redeemed_client_digest == address_digest(key, "198.51.100.23")
    for _, _, value in dump(services.deps.db.engine):
        assert value not in ("203.0.113.7", "198.51.100.23")


# PostgreSQL: TRUNCATE and the roles' grants


def one_decision(url: str) -> None:
    db = migrated(url)
    now = datetime.now(UTC)
    with db.transaction() as session:
        create_attempt(session, "a1", "s1", [], "https://x", now)
        session.flush()
        append_decision(
            session,
            rules.Decision("denied", "no_face"),
            attempt_id="a1",
            session_id="s1",
            client_reference_id="a1",
            decided_at=now,
            event_id=None,
            message_id=None,
        )
    db.dispose()


def test_postgres_refuses_to_truncate_the_audit_log(postgres_url: str) -> None:
    one_decision(postgres_url)
    engine = create_engine(postgres_url)
    for statement in ("TRUNCATE decisions", "TRUNCATE recovery_attempts CASCADE"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    engine.dispose()
    verified = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": postgres_url})
    assert verified.exit_code == 0 and verified.output.startswith("1 rows"), verified.output


@pytest.fixture
def role(postgres_url: str) -> Iterator[tuple[str, Any]]:
    """A login role of its own (roles are cluster-wide: a random name, dropped afterwards) and an admin engine."""
    name = f"fsr_role_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
    try:
        yield name, admin
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{name}"'))
            connection.execute(text(f'DROP ROLE "{name}"'))
        admin.dispose()


def check_grants(postgres_url: str, role: str) -> Any:
    url = make_url(postgres_url).set(username=role, password=None).render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["db", "check-grants"], env={"DATABASE_URL": url})


def grant(admin: Any, role: str, statements: str) -> None:
    with admin.connect() as connection:
        for statement in statements.format(role=f'"{role}"').split(";"):
            if statement.strip():
                connection.execute(text(statement))


# What the operator grants the service's role: the file docs/operations.md points at.
APP_ROLE_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "app-role.sql"
APP_ROLE_GRANTS = "\n".join(
    line for line in APP_ROLE_SQL.read_text().splitlines() if not line.startswith("--")
).replace("facesign_app", "{role}")


def test_check_grants_passes_a_role_that_can_only_read_and_append(postgres_url: str, role: tuple[str, Any]) -> None:
    name, admin = role
    one_decision(postgres_url)
    grant(admin, name, APP_ROLE_GRANTS)
    result = check_grants(postgres_url, name)
    assert result.exit_code == 0, result.output
    assert name in result.output
    # ...and that role can do the service's work on the log: read it and append to it.
    deps, fake = make_deps(check_url(postgres_url, name), "/nonexistent")
    session_id = seed_attempt(deps, fake, attempt_id="a2", email=EMAIL)
    assert decide.process_session_event(deps, session_id, "evt_2", "msg_2").status == "approved"
    deps.db.dispose()


def check_url(postgres_url: str, role: str) -> str:
    return make_url(postgres_url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.mark.parametrize("excess", ["UPDATE", "DELETE", "TRUNCATE"])
def test_check_grants_fails_a_role_that_can_rewrite_the_log(
    postgres_url: str, role: tuple[str, Any], excess: str
) -> None:
    name, admin = role
    one_decision(postgres_url)
    grant(admin, name, APP_ROLE_GRANTS + f"; GRANT {excess} ON decisions TO {{role}}")
    result = check_grants(postgres_url, name)
    assert result.exit_code == 1
    assert f"can {excess} decisions" in result.output and "\n" not in result.output.strip()


def test_check_grants_fails_the_owner(postgres_url: str) -> None:
    migrated(postgres_url).dispose()
    result = CliRunner().invoke(main, ["db", "check-grants"], env={"DATABASE_URL": postgres_url})
    assert result.exit_code == 1 and "decisions" in result.output


def test_check_grants_does_not_apply_to_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    migrated(url).dispose()
    result = CliRunner().invoke(main, ["db", "check-grants"], env={"DATABASE_URL": url})
    assert result.exit_code == 0 and "does not apply" in result.output
