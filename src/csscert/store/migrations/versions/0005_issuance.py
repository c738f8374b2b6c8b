"""Issuance over the API: per-user roles, per-project issuance policies, revocation.

``user_roles`` holds each user's roles (the bootstrap user ``csscert-admin`` gets both);
``issuance_policies`` one row per project that has a policy; issued certificates gain their
revocation time and reason, their PEM, and the indexes the paged listing and the CRL walk.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BOOTSTRAP_USER = "csscert-admin"
_ROLES = ("certificate-issuer", "administrator")
_INDEXES = {
    "ix_issued_certificates_project_created": ["project_id", "created_at", "serial"],
    "ix_issued_certificates_project_status": ["project_id", "status", "created_at", "serial"],
    "ix_issued_certificates_ca_status": ["ca_id", "status", "not_after"],
}


def upgrade() -> None:
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
    )
    op.create_table(
        "issuance_policies",
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("allow_dns", sa.Text, nullable=False),
        sa.Column("allow_ip", sa.Text, nullable=False),
        sa.Column("max_days", sa.Integer, nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("issued_certificates") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("cert_pem", sa.Text, nullable=True))
    for name, columns in _INDEXES.items():
        op.create_index(name, "issued_certificates", columns)
    # `ca retire` now counts valid rows only: rows from before 0003 that a later certificate of
    # the same name replaced become what supersede_issued() would have made them.
    op.execute(
        sa.text(
            "UPDATE issued_certificates SET status = 'superseded' WHERE status = 'valid' AND EXISTS "
            "(SELECT 1 FROM issued_certificates AS later WHERE later.project_id = "
            "issued_certificates.project_id AND later.name = issued_certificates.name AND "
            "later.created_at > issued_certificates.created_at)"
        )
    )
    users = sa.table("users", sa.column("id", sa.String), sa.column("name", sa.String))
    roles = sa.table("user_roles", sa.column("user_id", sa.String), sa.column("role", sa.String))
    for role in _ROLES:
        op.execute(
            roles.insert().from_select(
                ["user_id", "role"],
                sa.select(users.c.id, sa.literal(role)).where(users.c.name == _BOOTSTRAP_USER),
            )
        )


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="issued_certificates")
    with op.batch_alter_table("issued_certificates") as batch:
        for column in ("revoked_at", "revocation_reason", "cert_pem"):
            batch.drop_column(column)
    op.drop_table("issuance_policies")
    op.drop_table("user_roles")
