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
    # Epoch milliseconds; tokens of the user issued before it are void (0002).
    Column("tokens_valid_after", BigInteger, nullable=True),
    Index("ix_users_domain_name", "domain_id", "name", unique=True),
    Index("ix_users_name", "name"),  # paged listings across domains (0002)
)

grants = Table(
    "grants",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_grants_project_id", "project_id"),  # 0002
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
    Index("ix_access_keys_user_id", "user_id"),  # 0002
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
    # Certificates above the CA up to and including its root, PEM; "" for a root (0007).
    Column("chain_pem", Text, nullable=False, server_default=""),
)

# Intermediates asked for (`ca intermediate --csr-out`) and not installed yet: the key waits here,
# sealed with the context of the CA it becomes (same id), until the signed certificate comes (0007).
pending_authorities = Table(
    "pending_authorities",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scope", String(32), nullable=False, index=True),
    Column("csr_pem", Text, nullable=False),
    Column("key_sealed", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
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
    # Since migration 0003: what `cert list`, `cert renew` and `opensearch-config` need.
    Column("subject", Text, nullable=False, server_default=""),
    Column("profile", String(16), nullable=False, server_default="node"),
    Column("key_type", String(16), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="valid"),
    Column("origin", String(16), nullable=False, server_default="cli"),
    # Since 0005: revocation (the CRL lists these) and the certificate itself (the API returns it).
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("cert_pem", Text, nullable=True),
    Index("ix_issued_certificates_project_name", "project_id", "name"),  # 0002
    # 0005: the API's paged listing (by project, optionally by status, in issue order) and the
    # CRL / `ca retire` (a CA's certificates by status).
    Index("ix_issued_certificates_project_created", "project_id", "created_at", "serial"),
    Index("ix_issued_certificates_project_status", "project_id", "status", "created_at", "serial"),
    Index("ix_issued_certificates_ca_status", "ca_id", "status", "not_after"),
)

# Per-user roles (0005): "certificate-issuer", "administrator" (identity/roles.py).
user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), primary_key=True),
)

# A project's issuance policy (0005): JSON lists of DNS patterns and CIDRs, and the longest validity.
issuance_policies = Table(
    "issuance_policies",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("allow_dns", Text, nullable=False),
    Column("allow_ip", Text, nullable=False),
    Column("max_days", Integer, nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
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
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The user whose token it revokes, when known, so deleting the user removes them (0002).
    Column("user_id", String(32), nullable=True, index=True),
)

# One row, bumped in the same transaction as every write, so readers can tell that something changed.
revision = Table(
    "revision",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
    # Every change row with rev <= this was pruned (0002): a reader behind it drops its caches.
    Column("changes_pruned_through", BigInteger, nullable=False, server_default="0"),
)

# The change log (0002): each write records here, in its own transaction and with the revision it
# bumped to, which records it changed (kind + key). Readers apply the rows after the revision they
# last saw. The primary key leads with ``rev``, so it is the index ``changes_since`` walks.
changes = Table(
    "changes",
    metadata,
    Column("rev", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# The audit trail: append-only (the store has no statement that updates or deletes a row here).
audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("revision", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("origin", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("detail", Text, nullable=False),
)

# ACME (RFC 8555, migration 0006): every piece of protocol state lives here, so several csscert hosts
# on one PostgreSQL serve one ACME service. None of it is cached by the read model (store/acme.py).
acme_eab_keys = Table(
    "acme_eab_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("hmac_sealed", Text, nullable=False),  # sealed with context "eab:{kid}"
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("account_id", String(32), nullable=True),  # the one account it bound, once used
    Index("ix_acme_eab_keys_project", "project_id"),
)

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("thumbprint", String(64), nullable=False, unique=True),  # RFC 7638, base64url
    Column("jwk", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", Text, nullable=False),
    Column("eab_kid", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

acme_orders = Table(
    "acme_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("acme_accounts.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", Text, nullable=False),  # JSON list of {"type", "value"}
    Column("expires", DateTime(timezone=True), nullable=False, index=True),
    Column("error", Text, nullable=True),  # a problem document (JSON)
    Column("cert_serial", String(48), nullable=True, index=True),
    Column("cert_pem", Text, nullable=True),  # leaf + chain, as served at the certificate URL
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_acme_orders_account", "account_id", "created_at"),
)

acme_authorizations = Table(
    "acme_authorizations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "order_id", String(32), ForeignKey("acme_orders.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("kind", String(8), nullable=False),  # dns | ip
    Column("value", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
)

acme_challenges = Table(
    "acme_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "authz_id",
        String(32),
        ForeignKey("acme_authorizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),  # http-01 | tls-alpn-01
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
)

acme_nonces = Table(
    "acme_nonces",
    metadata,
    Column("value", String(64), primary_key=True),
    Column("expires", DateTime(timezone=True), nullable=False, index=True),
)
