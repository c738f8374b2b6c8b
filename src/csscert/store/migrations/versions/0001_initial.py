"""Initial schema: identity, certificate authorities, issued certificates, token keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meta", sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text, nullable=False)
    )
    op.create_table(
        "revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "domains",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_users_domain_name", "users", ["domain_id", "name"], unique=True)
    op.create_table(
        "grants",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_table(
        "access_keys",
        sa.Column("access", sa.String(20), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "certificate_authorities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(48), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("not_before", _TS, nullable=False),
        sa.Column("not_after", _TS, nullable=False),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("key_sealed", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
    )
    op.create_index("ix_certificate_authorities_scope", "certificate_authorities", ["scope"])
    op.create_table(
        "issued_certificates",
        sa.Column("serial", sa.String(48), primary_key=True),
        sa.Column("ca_id", sa.String(32), sa.ForeignKey("certificate_authorities.id"), nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sans", sa.Text, nullable=False),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False),
        sa.Column("not_before", _TS, nullable=False),
        sa.Column("not_after", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_issued_certificates_ca_id", "issued_certificates", ["ca_id"])
    op.create_table(
        "fernet_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_sealed", sa.Text, nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "revocations",
        sa.Column("audit_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.execute("INSERT INTO revision (id, value) VALUES (1, 0)")


def downgrade() -> None:
    for name in (
        "revocations",
        "fernet_keys",
        "issued_certificates",
        "certificate_authorities",
        "access_keys",
        "grants",
        "users",
        "projects",
        "domains",
        "revision",
        "meta",
    ):
        op.drop_table(name)
