"""audit checkpoints, the decision an access opened, and the indexes the dashboard's aggregates read

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DECISION_INDEXES = {
    "ix_decisions_day_outcome_reason": ["decided_at", "outcome", "reason"],
    "ix_decisions_day_matched_user": ["decided_at", "matched_user_id", "outcome"],
    "ix_decisions_day_attempt": ["decided_at", "attempt_id"],
}

ATTEMPT_INDEX = "ix_recovery_attempts_decided_created"


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("head_id", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("started_after", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("bad_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_by", sa.String(length=128), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_access_log") as batch_op:
        batch_op.add_column(sa.Column("decision_id", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_audit_access_log_decision_id", ["decision_id"], unique=False)
    # Plain CREATE INDEX: on PostgreSQL it blocks appends while it builds (a minute per ten million rows
    # here); run the migration in a quiet window on a large log.
    for name, columns in DECISION_INDEXES.items():
        op.create_index(name, "decisions", columns, unique=False)
    op.create_index(ATTEMPT_INDEX, "recovery_attempts", ["decided_at", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(ATTEMPT_INDEX, table_name="recovery_attempts")
    for name in DECISION_INDEXES:
        op.drop_index(name, table_name="decisions")
    with op.batch_alter_table("audit_access_log") as batch_op:
        batch_op.drop_index("ix_audit_access_log_decision_id")
        batch_op.drop_column("decision_id")
    op.drop_table("audit_checkpoints")
