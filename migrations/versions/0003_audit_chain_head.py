"""audit_chain_head(): the chain lock and the head read in one round trip (PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A VOLATILE function takes a fresh snapshot for each query it runs, so the head is read after the
# lock is granted even when the call is part of a larger statement (whose own snapshot is older).
CHAIN_HEAD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_chain_head(lock_key bigint)
RETURNS TABLE (head_id bigint, head_hash varchar)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY SELECT d.id, d.hash FROM decisions AS d ORDER BY d.id DESC LIMIT 1;
END;
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHAIN_HEAD_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_chain_head(bigint)")
