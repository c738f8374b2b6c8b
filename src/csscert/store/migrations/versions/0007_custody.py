"""Key custody: a CA's chain up to its root (imported CAs, intermediates) and pending intermediates.

Revision ID: 0007
Revises: 0006 (re-chained at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_authorities") as batch:
        # PEM certificates above the CA, up to and including the root ("" for a root: every CA
        # csscert made before this revision).
        batch.add_column(sa.Column("chain_pem", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "pending_authorities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(32), nullable=False, index=True),
        sa.Column("csr_pem", sa.Text, nullable=False),
        sa.Column("key_sealed", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pending_authorities")
    if op.get_bind().dialect.name == "sqlite":
        # A batch "move and copy" would drop certificate_authorities, which issued_certificates
        # references: SQLite's foreign-key check refuses that. SQLite (3.35+) drops a plain
        # column in place.
        op.execute("ALTER TABLE certificate_authorities DROP COLUMN chain_pem")
    else:
        op.drop_column("certificate_authorities", "chain_pem")
