"""Certificate profiles: what a node, client or admin certificate may be used for.

OpenSearch needs a node certificate for both sides of its transport layer (it serves and it
connects) and on HTTP; clients and the security admin only authenticate (``clientAuth``) and
need no subject alternative name. A CSR may ask for less than its profile allows, never more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

__all__ = ["PROFILES", "Profile", "ProfileRule", "extended_key_usage", "usage_name"]

Profile = Literal["node", "client", "admin"]


@dataclass(frozen=True)
class ProfileRule:
    name: Profile
    usages: tuple[ObjectIdentifier, ...]
    sans_required: bool
    summary: str


PROFILES: dict[str, ProfileRule] = {
    "node": ProfileRule(
        "node",
        (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        True,
        "serverAuth + clientAuth, DNS/IP names required",
    ),
    "client": ProfileRule("client", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "clientAuth"),
    "admin": ProfileRule(
        "admin", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "clientAuth, listed in admin_dn"
    ),
}

_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


def usage_name(oid: ObjectIdentifier) -> str:
    return _USAGE_NAMES.get(oid, oid.dotted_string)


def extended_key_usage(rule: ProfileRule) -> x509.ExtendedKeyUsage:
    return x509.ExtendedKeyUsage(list(rule.usages))
