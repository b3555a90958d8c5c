"""one write path: the chain is hashed in Python only; an attempt's deadline is derived, not stored

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:00:00
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_chain_head(bigint)")
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.drop_column("expires_at")


def downgrade() -> None:
    # Back to a stored deadline; the old default TTL (1800 s) is the best guess for existing rows.
    attempts = sa.table(
        "recovery_attempts",
        sa.column("id", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    for attempt_id, created_at in bind.execute(sa.select(attempts.c.id, attempts.c.created_at)).all():
        expires_at = created_at + timedelta(seconds=1800)
        bind.execute(attempts.update().where(attempts.c.id == attempt_id).values(expires_at=expires_at))
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
