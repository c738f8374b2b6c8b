"""ACME (RFC 8555): EAB keys, accounts, orders, authorizations, challenges and nonces.

Revision ID: 0006
Revises: 0005 (this branch merged issuance; re-chain at merge if needed)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_eab_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hmac_sealed", sa.Text, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.Column("account_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_acme_eab_keys_project", "acme_eab_keys", ["project_id"])
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("thumbprint", sa.String(64), nullable=False, unique=True),
        sa.Column("jwk", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("eab_kid", sa.String(64), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("acme_accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.Text, nullable=False),
        sa.Column("expires", _TZ, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cert_serial", sa.String(48), nullable=True),
        sa.Column("cert_pem", sa.Text, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_index("ix_acme_orders_expires", "acme_orders", ["expires"])
    op.create_index("ix_acme_orders_cert_serial", "acme_orders", ["cert_serial"])
    op.create_index("ix_acme_orders_account", "acme_orders", ["account_id", "created_at"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "order_id", sa.String(32), sa.ForeignKey("acme_orders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires", _TZ, nullable=False),
    )
    op.create_index("ix_acme_authorizations_order_id", "acme_authorizations", ["order_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "authz_id",
            sa.String(32),
            sa.ForeignKey("acme_authorizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated", _TZ, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("expires", _TZ, nullable=False),
    )
    op.create_index("ix_acme_nonces_expires", "acme_nonces", ["expires"])


def downgrade() -> None:
    for table in ("acme_nonces", "acme_challenges", "acme_authorizations", "acme_orders", "acme_accounts"):
        op.drop_table(table)
    op.drop_index("ix_acme_eab_keys_project", table_name="acme_eab_keys")
    op.drop_table("acme_eab_keys")
