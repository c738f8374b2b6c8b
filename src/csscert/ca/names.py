"""Name rules of the CA: DNS and IP subject alternative names, subjects, and which CA scope a project uses.

Pure functions: they check text and say in one sentence what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from csscert.errors import InvalidRequest
from csscert.settings import CAScope

__all__ = [
    "REGION_SCOPE",
    "AuthorityError",
    "parse_subject",
    "scope_of",
    "validate_dns_name",
    "validate_ip",
]

REGION_SCOPE = "region"
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class AuthorityError(InvalidRequest):
    """A request the authority refuses; the message says why, for a person to read."""


def scope_of(ca_scope: CAScope, project_id: str) -> str:
    """The CA scope a project's certificates come from: the region's, or its own."""
    return REGION_SCOPE if ca_scope == "region" else project_id


def parse_subject(text: str) -> x509.Name:
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise AuthorityError(f"subject {text!r} is not an RFC 4514 name: {exc}") from exc
    if not list(name):
        raise AuthorityError("the subject must not be empty")
    return name


def validate_dns_name(name: str) -> str:
    """A DNS name for a SAN: lower-case labels, optional leading ``*.`` wildcard."""
    candidate = name.strip().lower().rstrip(".")
    labels = candidate.split(".")
    if labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not candidate or len(candidate) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise AuthorityError(f"{name!r} is not a valid DNS name")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    raise AuthorityError(f"{name!r} is an IP address: give it with --ip (clients match IPs only there)")


def validate_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError as exc:
        raise AuthorityError(f"{address!r} is not a valid IP address") from exc
