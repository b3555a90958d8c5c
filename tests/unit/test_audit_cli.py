"""`auditor-token …` and `audit query --email`, `audit anchor`, `audit access-log` on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from adapters.db import audit_log
from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.models import AuditAccess, AuditorToken, Decision
from adapters.db.pseudonyms import pseudonym_key
from cli import main
from domain import rules
from domain.audit_chain import email_digest
from tests.fakes import append_decision, migrated


def run(url: str, *args: str, key: str = "", sandbox: str = "1") -> Any:
    env = {"DATABASE_URL": url, "AUDIT_PSEUDONYM_KEY": key, "FACESIGN_SANDBOX": sandbox}
    return CliRunner().invoke(main, list(args), env=env)


def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    migrated(url)
    return url


def decide(url: str, name: str, email: str, configured_key: str | None = None) -> None:
    """A decision appended the way the worker appends it, with the recognised email digested."""
    now = datetime.now(UTC)
    with Database.connect(url).transaction() as session:
        create_attempt(session, name, f"sess_{name}", [], "https://x", now)
        append_decision(
            session,
            rules.Decision("denied", "matched_face_has_no_local_user", recognized_email=email.strip().lower()),
            attempt_id=name,
            session_id=f"sess_{name}",
            client_reference_id=name,
            decided_at=now,
            event_id=None,
            message_id=None,
            digest_key=pseudonym_key(session, configured_key, allow_stored=True),
        )


def test_token_create_list_revoke(tmp_path: Path) -> None:
    url = database(tmp_path)
    created = run(url, "auditor-token", "create", "ann")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("fsa_") and len(token) > 40
    with Database.connect(url).reading() as session:
        stored = session.scalars(select(AuditorToken)).all()
    assert [row.name for row in stored] == ["ann"] and token not in stored[0].token_hash

    listed = run(url, "auditor-token", "list")
    assert listed.exit_code == 0 and "ann" in listed.output and "active" in listed.output
    assert token not in listed.output

    assert run(url, "auditor-token", "revoke", "ann").exit_code == 0
    assert "revoked" in run(url, "auditor-token", "list").output


def test_token_mistakes_are_one_line_and_exit_1(tmp_path: Path) -> None:
    url = database(tmp_path)
    assert run(url, "auditor-token", "create", "ann").exit_code == 0
    again = run(url, "auditor-token", "create", "ann")
    assert again.exit_code == 1 and "already exists" in again.output
    bad = run(url, "auditor-token", "create", "ann smith")
    assert bad.exit_code == 1 and "auditor name" in bad.output
    unknown = run(url, "auditor-token", "revoke", "bob")
    assert unknown.exit_code == 1 and "no auditor named 'bob'" in unknown.output
    assert run(url, "auditor-token", "create").exit_code == 2


def test_query_by_email_digests_it_locally(tmp_path: Path) -> None:
    url = database(tmp_path)
    decide(url, "a1", "quinn@example.com")
    decide(url, "a2", "bob@example.com")
    found = run(url, "audit", "query", "--email", "  Quinn@Example.COM ", "--format", "jsonl")
    assert found.exit_code == 0, found.output
    [record] = [json.loads(line) for line in found.stdout.splitlines()]
    assert record["attemptId"] == "a1"
    assert "quinn" not in json.dumps(record).lower()  # a name no hex digest can contain
    assert run(url, "audit", "query", "--email", "eve@example.com", "--format", "jsonl").stdout == ""
    with Database.connect(url).reading() as session:
        entries = session.scalars(select(AuditAccess)).all()
        key = pseudonym_key(session, None, allow_stored=True)
    # the access log keeps the digest that was looked for, never the email itself
    assert entries[0].filters == {"email_digest": email_digest(key, "quinn@example.com")}
    assert entries[0].auditor.startswith("cli:") and entries[0].action == "query"
    assert "example.com" not in json.dumps([e.filters for e in entries])


def test_outside_the_sandbox_an_email_lookup_needs_the_configured_key(tmp_path: Path) -> None:
    url = database(tmp_path)
    decide(url, "a1", "quinn@example.com", configured_key="configured-secret")
    refused = run(url, "audit", "query", "--email", "quinn@example.com", sandbox="0")
    assert refused.exit_code == 1 and "AUDIT_PSEUDONYM_KEY" in refused.output
    found = run(url, "audit", "query", "--email", "quinn@example.com", "--format", "jsonl", key="configured-secret")
    assert json.loads(found.stdout)["attemptId"] == "a1"


def test_query_by_email_uses_the_configured_key(tmp_path: Path) -> None:
    url = database(tmp_path)
    decide(url, "a1", "quinn@example.com", configured_key="configured-secret")
    assert run(url, "audit", "query", "--email", "quinn@example.com", "--format", "jsonl").stdout == ""
    found = run(url, "audit", "query", "--email", "quinn@example.com", "--format", "jsonl", key="configured-secret")
    assert json.loads(found.stdout)["attemptId"] == "a1"


def test_no_raw_email_reaches_the_audit_table(tmp_path: Path) -> None:
    url = database(tmp_path)
    decide(url, "a1", "quinn@example.com")
    raw = Path(url.removeprefix("sqlite:///"))
    with Database.connect(url).reading() as session:
        [row] = session.scalars(select(Decision)).all()
    assert "quinn" not in json.dumps(audit_log.to_record(row))
    files = [path for path in raw.parent.iterdir() if path.name.startswith(raw.name)]  # the file and its WAL
    assert raw in files and all(b"quinn@example.com" not in path.read_bytes() for path in files)


def test_anchor_and_verify_from_the_command_line(tmp_path: Path) -> None:
    url = database(tmp_path)
    empty = run(url, "audit", "anchor")
    assert empty.exit_code == 1 and "empty" in empty.output
    decide(url, "a1", "ada@example.com")
    decide(url, "a2", "bob@example.com")
    anchor = run(url, "audit", "anchor").stdout.strip()
    count, digest = anchor.split(":")
    assert count == "2" and len(digest) == 64
    verified = run(url, "audit", "verify", "--anchor", anchor)
    assert verified.exit_code == 0 and verified.stdout.startswith("2 rows, chain intact and matching the anchor")
    wrong = run(url, "audit", "verify", "--anchor", f"2:{'0' * 64}")
    assert wrong.exit_code == 1 and "chain broken at row 2: hash differs from the anchor's" in wrong.output


def test_access_log_lists_reads_newest_first(tmp_path: Path) -> None:
    url = database(tmp_path)
    run(url, "audit", "query", "--outcome", "denied")
    run(url, "audit", "export", "--before", "2030-01-01")
    lines = run(url, "audit", "access-log").stdout.splitlines()
    assert len(lines) == 2
    assert " export " in lines[0] and '"until":"2030-01-01T00:00:00+00:00"' in lines[0]
    assert " query " in lines[1] and '"outcome":"denied"' in lines[1]


def test_the_access_log_names_the_os_account_not_what_user_claims(tmp_path: Path) -> None:
    import os
    import pwd

    url = database(tmp_path)
    env = {"DATABASE_URL": url, "USER": "mallory", "LOGNAME": "mallory", "FACESIGN_SANDBOX": "1"}
    assert CliRunner().invoke(main, ["audit", "query"], env=env).exit_code == 0
    with Database.connect(url).reading() as session:
        [entry] = session.scalars(select(AuditAccess)).all()
    assert entry.auditor == f"cli:{pwd.getpwuid(os.getuid()).pw_name}" and "mallory" not in entry.auditor
