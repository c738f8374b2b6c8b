"""Plain records the store hands to the authority and identity layers.

They are immutable dataclasses, not ORM objects, so nothing above the store can lazily reach
back into the database.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "PROJECT_ID_RE",
    "AccessKey",
    "AuditRecord",
    "CAState",
    "CertificateAuthority",
    "Change",
    "Domain",
    "FernetKey",
    "ImportedAccessKey",
    "ImportedUserRecord",
    "IssuancePolicy",
    "IssuedCertificate",
    "Project",
    "User",
    "new_id",
]

PROJECT_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    """A 32 lower-case hex identifier, the shape the cloud uses for project, domain and user ids."""
    return secrets.token_hex(16)


class CAState(StrEnum):
    ACTIVE = "active"  # signs new node certificates; first in the bundle
    TRUSTED = "trusted"  # no longer signs, still in the bundle during an overlap
    RETIRED = "retired"  # out of the bundle


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    password_hash: str | None
    enabled: bool
    created_at: datetime
    project_ids: frozenset[str]
    # Epoch milliseconds: tokens of this user issued before it are void (None: no such event).
    tokens_valid_after_ms: int | None = None
    # Per-user roles (0005): "certificate-issuer", "administrator" (identity/roles.py).
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AccessKey:
    access: str
    user_id: str
    secret_sealed: str
    enabled: bool
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    id: str
    scope: str  # "region" or a project id
    serial: str  # lower-case hex
    subject: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    cert_pem: bytes
    key_sealed: str
    state: CAState
    created_at: datetime
    changed_at: datetime
    chain_pem: bytes = b""  # certificates above it up to its root (imported, intermediate)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    serial: str  # lower-case hex
    ca_id: str
    project_id: str
    name: str
    sans: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    subject: str = ""  # RFC 4514
    profile: str = "node"  # node, client, admin
    key_type: str = ""  # rsa2048, p256...; "" on records older than migration 0003
    status: str = "valid"  # valid; superseded once a newer one of the same name was delivered; revoked
    origin: str = "cli"  # cli (key generated here), csr (signed request), api, acme, serve (own TLS)
    revoked_at: datetime | None = None  # since 0005, with the RFC 5280 reason (ReasonFlags value)
    revocation_reason: str | None = None
    cert_pem: bytes | None = None  # the certificate itself (0005; None on older records)


@dataclass(frozen=True, slots=True)
class IssuancePolicy:
    """What a project's certificates may name (0005): DNS patterns (``node-1.example.com`` or
    ``*.example.com``, one label), IP networks (CIDR) and the longest validity. Once it has any
    name rule, every DNS name and IP address must match one (as step-ca's allow lists do); one
    with only ``max_days`` limits validity alone. See :mod:`csscert.ca.policy`."""

    project_id: str
    allow_dns: tuple[str, ...] = ()
    allow_ip: tuple[str, ...] = ()
    max_days: int | None = None


@dataclass(frozen=True, slots=True)
class FernetKey:
    id: str
    key_sealed: str
    primary: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the store's change log: the write of store revision ``rev`` changed the
    record ``key`` of ``kind`` (e.g. ``("user", <user id>)``); readers evict exactly that."""

    rev: int
    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class ImportedAccessKey:
    """An access key to create with an imported user; the secret is sealed by the caller."""

    access: str
    secret_sealed: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ImportedUserRecord:
    """One user of a bulk import, ready to store: ids resolved, password hashed, secrets sealed."""

    id: str
    name: str
    domain_id: str
    password_hash: str | None = None
    project_ids: tuple[str, ...] = ()
    access_keys: tuple[ImportedAccessKey, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One change in the audit trail: when, at which store revision, who, from where, what."""

    id: int
    at: datetime
    revision: int
    actor: str
    origin: str
    action: str
    target: str
    detail: str
