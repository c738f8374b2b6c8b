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
    "build_subject",
    "common_name",
    "is_ip_address",
    "java_dn",
    "parse_subject",
    "scope_of",
    "validate_dns_name",
    "validate_ip",
    "validate_name",
]

REGION_SCOPE = "region"
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AuthorityError(InvalidRequest):
    """A request the authority refuses; the message says why, for a person to read."""


def scope_of(ca_scope: CAScope, project_id: str) -> str:
    """The CA scope a project's certificates come from: the region's, or its own."""
    return REGION_SCOPE if ca_scope == "region" else project_id


# Names people write that RFC 4514 does not define (OpenSSL's spellings).
_EXTRA_ATTRIBUTE_NAMES = {
    "emailAddress": x509.NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": x509.NameOID.EMAIL_ADDRESS,
    "E": x509.NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": x509.NameOID.SERIAL_NUMBER,
    "serialNumber": x509.NameOID.SERIAL_NUMBER,
}


def parse_subject(text: str) -> x509.Name:
    try:
        name = x509.Name.from_rfc4514_string(text, _EXTRA_ATTRIBUTE_NAMES)
    except ValueError as exc:
        detail = str(exc) or 'escape , + ; < > " \\ and a leading # or space with a backslash'
        raise AuthorityError(
            f"subject {text!r} is not an RFC 4514 name ({detail}); e.g. 'CN=node-1,OU=search,O=Example'"
        ) from exc
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


def is_ip_address(value: str) -> bool:
    """True for an IPv4 or IPv6 address (a SAN string or an identifier that is not a DNS name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_name(name: str) -> str:
    """A certificate's name: its files are NAME.crt and NAME.key, and ``cert renew NAME`` finds it."""
    if "=" in name or "," in name:
        raise AuthorityError(
            f"--name {name!r} looks like a subject: give the subject with --subject (RFC 4514, e.g. "
            "'CN=admin,OU=ops,O=Example') and a plain --name for the files"
        )
    if not _NAME.match(name):
        raise AuthorityError(
            f"--name {name!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (it names the files NAME.crt and NAME.key)"
        )
    if name == "ca":
        raise AuthorityError("--name 'ca' would write the node's files over ca.crt; choose another name")
    return name


def build_subject(
    name: str | None, subject: str | None = None, org: str | None = None, units: tuple[str, ...] = ()
) -> x509.Name:
    """The subject of a new certificate: ``subject`` (RFC 4514) as given, or ``CN=name`` with the
    organisation and organisational units, most specific first as people write DNs
    (``CN=node-1,OU=ops,O=Example``)."""
    if subject is not None:
        if org or units:
            raise AuthorityError("give either --subject or --org/--ou, not both")
        return parse_subject(subject)
    if not name:
        raise AuthorityError("give --name (or a whole --subject)")
    oid = x509.NameOID
    try:
        attributes = [x509.NameAttribute(oid.ORGANIZATION_NAME, org)] if org else []
        attributes += [x509.NameAttribute(oid.ORGANIZATIONAL_UNIT_NAME, unit) for unit in reversed(units)]
        attributes.append(x509.NameAttribute(oid.COMMON_NAME, name))
    except ValueError as exc:
        raise AuthorityError(f"the subject is not valid: {exc}") from exc
    return x509.Name(attributes)


def common_name(subject: x509.Name) -> str | None:
    values = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(values[-1].value) if values else None


# -- the DN string OpenSearch compares ------------------------------------------------------------
#
# OpenSearch's security plugin reads a peer's subject with Java's
# ``X500Principal.getName()`` (RFC 2253 form) and compares it with ``plugins.security.nodes_dn``
# and ``authcz.admin_dn``. RFC 4514 strings from other libraries differ from it in details
# (Java escapes every '=' and '#', writes unknown attribute types as an OID with the DER value in
# hex), so :func:`java_dn` re-implements the JDK's rules (sun.security.x509.AVA.toRFC2253String).
# A test compiles a small Java program and compares.

_JAVA_KEYWORDS = {
    x509.NameOID.COMMON_NAME: "CN",
    x509.NameOID.COUNTRY_NAME: "C",
    x509.NameOID.LOCALITY_NAME: "L",
    x509.NameOID.STATE_OR_PROVINCE_NAME: "ST",
    x509.NameOID.ORGANIZATION_NAME: "O",
    x509.NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    x509.NameOID.STREET_ADDRESS: "STREET",
    x509.NameOID.DOMAIN_COMPONENT: "DC",
    x509.NameOID.USER_ID: "UID",
}
_JAVA_ESCAPEES = ',=+<>#;"\\'
# ASN.1 string tags Java prints as text, and how each encodes its characters.
_STRING_TAGS = {12: "utf-8", 19: "ascii", 20: "latin-1", 22: "ascii", 28: "utf-32-be", 30: "utf-16-be"}


def _der_hex(tag: int, value: str) -> str:
    data = value.encode(_STRING_TAGS.get(tag, "utf-8"))
    size = len(data)
    length = (
        bytes([size])
        if size < 0x80
        else bytes([0x80 | ((size.bit_length() + 7) // 8)])
        + size.to_bytes((size.bit_length() + 7) // 8, "big")
    )
    return (bytes([tag]) + length + data).hex()


def _java_value(value: str) -> str:
    escaped: list[str] = []
    for char in value:
        if char in _JAVA_ESCAPEES:
            escaped.append("\\" + char)
        elif char == "\x00":
            escaped.append("\\00")
        else:
            escaped.append(char)
    # Leading and trailing blanks (space, CR) are escaped too.
    lead = 0
    while lead < len(escaped) and escaped[lead] in (" ", "\r"):
        lead += 1
    trail = len(escaped) - 1
    while trail >= lead and escaped[trail] in (" ", "\r"):
        trail -= 1
    return "".join(
        ("\\" + part) if (index < lead or index > trail) else part for index, part in enumerate(escaped)
    )


def _java_attribute(attribute: x509.NameAttribute[str | bytes]) -> str:
    keyword = _JAVA_KEYWORDS.get(attribute.oid)
    tag = int(attribute._type.value)  # the ASN.1 string type the value is encoded with
    if keyword is None or tag not in _STRING_TAGS or isinstance(attribute.value, bytes):
        raw = attribute.value
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        return f"{attribute.oid.dotted_string}=#{_der_hex(tag, text)}"
    return f"{keyword}={_java_value(attribute.value)}"


def java_dn(subject: x509.Name) -> str:
    """``subject`` exactly as Java's ``X500Principal.getName()`` writes it (RFC 2253): the form
    OpenSearch compares ``nodes_dn`` and ``admin_dn`` with."""
    return ",".join(
        "+".join(_java_attribute(attribute) for attribute in rdn) for rdn in reversed(subject.rdns)
    )
