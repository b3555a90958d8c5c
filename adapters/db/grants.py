"""What the connected database role may do to the audit log beyond reading and appending to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from adapters.db.engine import Database

AUDIT_TABLE = "decisions"
TOO_MUCH = ("UPDATE", "DELETE", "TRUNCATE")


@dataclass(frozen=True)
class AuditGrants:
    role: str
    excess: tuple[str, ...]  # the privileges in TOO_MUCH that the role holds
    owner: bool  # owns the table (or is a member of its owner): may drop it or disable its triggers

    @property
    def append_only(self) -> bool:
        return not self.excess and not self.owner


def audit_grants(db: Database) -> AuditGrants | None:
    """The connected role's standing on the audit log; None where the database has no roles (SQLite)."""
    if not db.is_postgresql:
        return None
    with db.engine.connect() as connection:
        role = str(connection.scalar(text("SELECT current_user")))
        excess = tuple(
            privilege
            for privilege in TOO_MUCH
            if connection.scalar(
                text("SELECT has_table_privilege(current_user, :table, :privilege)"),
                {"table": AUDIT_TABLE, "privilege": privilege},
            )
        )
        owner = bool(
            connection.scalar(
                text(
                    "SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables "
                    "WHERE tablename = :table AND schemaname = current_schema()"
                ),
                {"table": AUDIT_TABLE},
            )
        )
    return AuditGrants(role, excess, owner)
