"""safe by default: TRUNCATE refused on the audit log, mail addresses forgettable, client digests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The row triggers of the first migration never fire for TRUNCATE, which empties the table in one
# statement; the same function refuses it as a statement trigger (its message names TG_OP).
TRUNCATE_TRIGGER = """
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
FOR EACH STATEMENT EXECUTE FUNCTION decisions_append_only()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TRUNCATE_TRIGGER)
    # A sent mail forgets its address (the reset link was already forgotten).
    with op.batch_alter_table("outgoing_mail") as batch_op:
        batch_op.alter_column("to_address", existing_type=sa.String(length=320), nullable=True)
    # Who started a recovery and who redeemed a token: keyed digests of their addresses, never the addresses.
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.add_column(sa.Column("client_digest", sa.String(length=64), nullable=True))
    with op.batch_alter_table("reset_tokens") as batch_op:
        batch_op.add_column(sa.Column("redeemed_client_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reset_tokens") as batch_op:
        batch_op.drop_column("redeemed_client_digest")
    with op.batch_alter_table("recovery_attempts") as batch_op:
        batch_op.drop_column("client_digest")
    # Sent mails no longer have an address; the old schema needs one, and an empty one says "forgotten".
    op.execute("UPDATE outgoing_mail SET to_address = '' WHERE to_address IS NULL")
    with op.batch_alter_table("outgoing_mail") as batch_op:
        batch_op.alter_column("to_address", existing_type=sa.String(length=320), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS decisions_no_truncate ON decisions")
