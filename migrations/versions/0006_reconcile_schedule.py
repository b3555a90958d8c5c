"""the reconciler's schedule and the finish evidence of each attempt

`next_check_at` and `checks`: when the reconciler asks FaceSign about a pending attempt next, and how
often it has asked (its backoff). `last_event_at`: the latest signed FaceSign status-event time held
for an attempt whose event could not be acted on at once (the evidence of when its session finished).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checks", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_recovery_attempts_status_next_check", ["status", "next_check_at"], unique=False)
    attempts = sa.table(
        "recovery_attempts",
        sa.column("status", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("next_check_at", sa.DateTime(timezone=True)),
    )
    # Pending attempts are due as they were before: in order of creation.
    op.execute(attempts.update().where(attempts.c.status == "pending").values(next_check_at=attempts.c.created_at))


def downgrade() -> None:
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.drop_index("ix_recovery_attempts_status_next_check")
        batch_op.drop_column("last_event_at")
        batch_op.drop_column("checks")
        batch_op.drop_column("next_check_at")
