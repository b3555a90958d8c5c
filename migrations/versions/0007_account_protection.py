"""account protection: the recovery lock's index and resets, alert mail, events for the application

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain CREATE INDEX: a batch operation could copy the append-only table on SQLite.
    op.create_index("ix_decisions_user_decided", "decisions", ["matched_user_id", "decided_at"], unique=False)
    op.create_table(
        "recovery_lock_resets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recovery_lock_resets_user_id", "recovery_lock_resets", ["user_id"], unique=False)
    with op.batch_alter_table("outgoing_mail") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="reset", nullable=False))
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))
    op.create_index("ix_outgoing_mail_user_created", "outgoing_mail", ["user_id", "created_at"], unique=False)
    op.create_table(
        "app_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_app_events_created_at", "app_events", ["created_at"], unique=False)
    op.create_table(
        "app_event_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["app_events.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "url", name="uq_app_event_deliveries_event_url"),
    )
    op.create_index(
        "ix_app_event_deliveries_status_next", "app_event_deliveries", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_app_event_deliveries_status_next", table_name="app_event_deliveries")
    op.drop_table("app_event_deliveries")
    op.drop_index("ix_app_events_created_at", table_name="app_events")
    op.drop_table("app_events")
    op.drop_index("ix_outgoing_mail_user_created", table_name="outgoing_mail")
    with op.batch_alter_table("outgoing_mail") as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("kind")
    op.drop_index("ix_recovery_lock_resets_user_id", table_name="recovery_lock_resets")
    op.drop_table("recovery_lock_resets")
    op.drop_index("ix_decisions_user_decided", table_name="decisions")
