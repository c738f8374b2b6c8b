"""SQLAlchemy Core tables. Alembic migrations in ``migrations/versions`` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_users_domain_name", "domain_id", "name", unique=True),
)

grants = Table(
    "grants",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access", String(20), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", String(255), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

certificate_authorities = Table(
    "certificate_authorities",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scope", String(32), nullable=False, index=True),
    Column("serial", String(48), nullable=False),
    Column("subject", Text, nullable=False),
    Column("fingerprint_sha256", String(64), nullable=False, unique=True),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("key_sealed", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

issued_certificates = Table(
    "issued_certificates",
    metadata,
    Column("serial", String(48), primary_key=True),
    Column("ca_id", String(32), ForeignKey("certificate_authorities.id"), nullable=False, index=True),
    Column("project_id", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("sans", Text, nullable=False),
    Column("fingerprint_sha256", String(64), nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Since migration 0004: what `cert list`, `cert renew` and `opensearch-config` need.
    Column("subject", Text, nullable=False, server_default=""),
    Column("profile", String(16), nullable=False, server_default="node"),
    Column("key_type", String(16), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="valid"),
    Column("origin", String(16), nullable=False, server_default="cli"),
    Index("ix_issued_certificates_project_name", "project_id", "name"),
)

fernet_keys = Table(
    "fernet_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_sealed", Text, nullable=False),
    Column("is_primary", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

revocations = Table(
    "revocations",
    metadata,
    Column("audit_id", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row, bumped in the same transaction as every write, so readers can tell that something changed.
revision = Table(
    "revision",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)
