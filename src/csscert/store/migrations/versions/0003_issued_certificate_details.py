"""Issued certificates: subject, profile, key type, status and origin.

``cert list`` shows them, ``cert renew`` re-issues from them and ``opensearch-config`` builds
``nodes_dn`` / ``admin_dn`` from them. Older rows were all node certificates with the subject
``CN=<name>``, made by ``cert issue``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = ("subject", "profile", "key_type", "status", "origin")


def upgrade() -> None:
    with op.batch_alter_table("issued_certificates") as batch:
        batch.add_column(sa.Column("subject", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("profile", sa.String(16), nullable=False, server_default="node"))
        batch.add_column(sa.Column("key_type", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="valid"))
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="cli"))
    issued = sa.table("issued_certificates", sa.column("name", sa.String), sa.column("subject", sa.Text))
    op.execute(issued.update().values(subject=sa.literal("CN=") + issued.c.name))


def downgrade() -> None:
    with op.batch_alter_table("issued_certificates") as batch:
        for column in _COLUMNS:
            batch.drop_column(column)
