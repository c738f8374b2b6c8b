"""The certificate authority: CA creation and rotation, node certificates, and the trust bundle.

All certificate logic lives here. The API only asks for a :class:`TrustBundle` and hands out
its precomputed bytes; the CLI asks for CAs and node certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from csscert.model import CAState, CertificateAuthority, IssuedCertificate, new_id
from csscert.sealing import Sealer
from csscert.settings import KeyType, Settings
from csscert.store import SqlStore

__all__ = [
    "REGION_SCOPE",
    "Authority",
    "AuthorityError",
    "NodeCertificate",
    "TrustBundle",
    "generate_private_key",
]

REGION_SCOPE = "region"
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clocks run a little behind
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class AuthorityError(ValueError):
    """A request the authority refuses; the message says why, for a person to read."""


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    return ec.generate_private_key(ec.SECP256R1() if key_type == "p256" else ec.SECP384R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _seal_context(ca_id: str) -> str:
    return f"ca:{ca_id}"


def _parse_subject(text: str) -> x509.Name:
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise AuthorityError(f"CA subject {text!r} is not an RFC 4514 name: {exc}") from exc
    if not list(name):
        raise AuthorityError("CA subject must not be empty")
    return name


def validate_dns_name(name: str) -> str:
    """A DNS name for a SAN: lower-case labels, optional leading ``*.`` wildcard."""
    candidate = name.strip().lower().rstrip(".")
    labels = candidate.split(".")
    if labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not candidate or len(candidate) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise AuthorityError(f"{name!r} is not a valid DNS name")
    return candidate


def validate_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError as exc:
        raise AuthorityError(f"{address!r} is not a valid IP address") from exc


@dataclass(frozen=True)
class NodeCertificate:
    """A node's key, its certificate chain and the CA file to hand to clients (all PEM)."""

    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    chain_pem: bytes
    ca_bundle_pem: bytes
    record: IssuedCertificate


class TrustBundle:
    """Every representation of the CAs a scope trusts, built once and then only read.

    ``authorities`` is ordered newest first; the first is the active (signing) CA. The bytes
    of each representation never change for the life of the object, so the HTTP layer can
    hash them once for a strong ETag and serve them without copying.
    """

    def __init__(self, scope: str, authorities: Sequence[CertificateAuthority], warning_days: int) -> None:
        if not authorities:
            raise AuthorityError(f"scope {scope} has no trusted CA")
        self.scope = scope
        self.authorities = tuple(authorities)
        self.certificates = tuple(x509.load_pem_x509_certificate(ca.cert_pem) for ca in self.authorities)
        self.last_modified = max(ca.changed_at for ca in self.authorities)
        self.last_modified_http = format_datetime(self.last_modified, usegmt=True)
        self.pem = b"".join(ca.cert_pem for ca in self.authorities)
        self.der = self.certificates[0].public_bytes(serialization.Encoding.DER)
        self.p7b = pkcs7.serialize_certificates(list(self.certificates), serialization.Encoding.DER)
        self.json = json.dumps(self._metadata(), separators=(",", ":")).encode()
        soonest = min(ca.not_after for ca in self.authorities)
        self.expiry_warning: str | None = None
        if soonest - dt.datetime.now(dt.UTC) <= dt.timedelta(days=warning_days):
            self.expiry_warning = f"a trusted CA certificate expires on {soonest.isoformat()}"
        self._truststores: dict[bytes, bytes] = {}

    def _metadata(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "certificates": [
                {
                    "subject": cert.subject.rfc4514_string(),
                    "issuer": cert.issuer.rfc4514_string(),
                    "serial": format(cert.serial_number, "x"),
                    "fingerprint_sha256": ca.fingerprint_sha256,
                    "fingerprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - pinning clients want it
                    "not_before": ca.not_before.isoformat(),
                    "not_after": ca.not_after.isoformat(),
                    "state": ca.state.value,
                }
                for ca, cert in zip(self.authorities, self.certificates, strict=True)
            ],
        }

    def truststore(self, password: str) -> bytes:
        """A PKCS#12 Java truststore (``trustedCertEntry`` per CA); cached per password.

        The encryption salts are random, so caching is what keeps the bytes, and the ETag,
        stable between calls. The cache key is a hash, so no password stays in memory.
        """
        cache_key = hashlib.sha256(password.encode()).digest()
        cached = self._truststores.get(cache_key)
        if cached is not None:
            return cached
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(10000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
        entries = [
            pkcs12.PKCS12Certificate(cert, f"cloudsearchservice-{ca.fingerprint_sha256[:16]}".encode())
            for ca, cert in zip(self.authorities, self.certificates, strict=True)
        ]
        blob = pkcs12.serialize_java_truststore(entries, encryption)
        if len(self._truststores) >= 64:
            self._truststores.clear()
        self._truststores[cache_key] = blob
        return blob


class Authority:
    """Creates, rotates and retires CAs, and signs node certificates, on top of the store."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings

    # -- scopes -------------------------------------------------------------------------

    def scope_for(self, project_id: str) -> str:
        return REGION_SCOPE if self._settings.ca_scope == "region" else project_id

    def scopes(self) -> list[str]:
        if self._settings.ca_scope == "region":
            return [REGION_SCOPE]
        return [project.id for project in self._store.projects()]

    def ensure(self, scope: str) -> bool:
        """Create the scope's first CA if it has none. True when one was created."""
        if self._store.authorities(scope):
            return False
        ca, _ = self._new_ca(scope)
        return self._store.add_authority(ca, only_if_scope_empty=True)

    def ensure_all(self) -> list[str]:
        return [scope for scope in self.scopes() if self.ensure(scope)]

    # -- lifecycle ----------------------------------------------------------------------

    def authorities(self, scope: str | None = None) -> list[CertificateAuthority]:
        return self._store.authorities(scope)

    def trusted(self, scope: str) -> list[CertificateAuthority]:
        """The CAs in a scope's bundle: the active one first, then older trusted ones."""
        return _trusted(self._store.authorities(scope))

    def active(self, scope: str) -> CertificateAuthority:
        trusted = self.trusted(scope)
        if not trusted or trusted[0].state is not CAState.ACTIVE:
            raise AuthorityError(f"scope {scope} has no active CA; run 'csscert serve' or 'csscert ca rotate'")
        return trusted[0]

    def rotate(self, scope: str) -> CertificateAuthority:
        ca, _ = self._new_ca(scope)
        self._store.add_authority(ca)
        return ca

    def find(self, fingerprint: str) -> CertificateAuthority:
        wanted = fingerprint.lower().replace(":", "")
        matches = [ca for ca in self._store.authorities() if ca.fingerprint_sha256.startswith(wanted)]
        if len(wanted) < 8 or len(matches) != 1:
            raise AuthorityError(f"no single CA has a SHA-256 fingerprint starting with {fingerprint!r}")
        return matches[0]

    def unexpired_issued(self, ca: CertificateAuthority) -> list[IssuedCertificate]:
        now = dt.datetime.now(dt.UTC)
        return [cert for cert in self._store.issued(ca.id) if cert.not_after > now]

    def retire(self, fingerprint: str, *, force: bool = False) -> CertificateAuthority:
        ca = self.find(fingerprint)
        if ca.state is CAState.RETIRED:
            raise AuthorityError("that CA is already retired")
        if ca.state is CAState.ACTIVE:
            raise AuthorityError("refusing to retire the active (newest) CA; rotate first")
        if len(self.trusted(ca.scope)) < 2:
            raise AuthorityError("refusing to retire the only trusted CA of its scope")
        live = self.unexpired_issued(ca)
        if live and not force:
            raise AuthorityError(
                f"{len(live)} unexpired node certificate(s) signed by this CA are on record "
                "(re-issue them, or pass --force)"
            )
        self._store.retire_authority(ca.id)
        return ca

    # -- node certificates --------------------------------------------------------------

    def issue_node(
        self,
        project_id: str,
        name: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        *,
        validity_days: int | None = None,
        key_type: KeyType | None = None,
    ) -> NodeCertificate:
        if not name.strip() or len(name) > 64:
            raise AuthorityError("node name must be 1 to 64 characters")
        dns = [validate_dns_name(value) for value in dns_names]
        ips = [validate_ip(value) for value in ip_addresses]
        if not dns and not ips:
            raise AuthorityError("give at least one --dns or --ip for the node certificate")
        scope = self.scope_for(project_id)
        signer = self.active(scope)
        ca_cert = x509.load_pem_x509_certificate(signer.cert_pem)
        ca_key = serialization.load_der_private_key(
            self._sealer.open(signer.key_sealed, _seal_context(signer.id)), password=None
        )
        if not isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise AuthorityError("the CA key has an unsupported type")
        key = generate_private_key(key_type or self._settings.ca_key_type)
        now = _now()
        days = validity_days if validity_days is not None else self._settings.node_validity_days
        if days < 1:
            raise AuthorityError("validity must be at least one day")
        not_after = min(now + dt.timedelta(days=days), signer.not_after)
        if not_after <= now:
            raise AuthorityError("the active CA has expired; rotate it before issuing")
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ip) for ip in ips]
        key_usage = x509.KeyUsage(
            digital_signature=True,
            key_encipherment=isinstance(key, rsa.RSAPrivateKey),
            content_commitment=False,
            data_encipherment=False,
            key_agreement=isinstance(key, ec.EllipticCurvePrivateKey),
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name.strip())]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        record = IssuedCertificate(
            serial=format(cert.serial_number, "x"),
            ca_id=signer.id,
            project_id=project_id,
            name=name.strip(),
            sans=",".join([*dns, *(str(ip) for ip in ips)]),
            fingerprint_sha256=_fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            created_at=now,
        )
        self._store.record_issued(record)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        return NodeCertificate(
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            cert_pem=cert_pem,
            chain_pem=cert_pem + signer.cert_pem,
            ca_bundle_pem=b"".join(ca.cert_pem for ca in self.trusted(scope)),
            record=record,
        )

    # -- internals ----------------------------------------------------------------------

    def _new_ca(self, scope: str) -> tuple[CertificateAuthority, PrivateKey]:
        settings = self._settings
        subject = _parse_subject(settings.ca_subject)
        key = generate_private_key(settings.ca_key_type)
        now = _now()
        not_after = now + dt.timedelta(days=settings.ca_validity_days)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        ca_id = new_id()
        key_der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        record = CertificateAuthority(
            id=ca_id,
            scope=scope,
            serial=format(cert.serial_number, "x"),
            subject=cert.subject.rfc4514_string(),
            fingerprint_sha256=_fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_sealed=self._sealer.seal(key_der, _seal_context(ca_id)),
            state=CAState.ACTIVE,
            created_at=now,
            changed_at=now,
        )
        return record, key


def _trusted(authorities: Sequence[CertificateAuthority]) -> list[CertificateAuthority]:
    live = [ca for ca in authorities if ca.state is not CAState.RETIRED]
    return sorted(live, key=lambda ca: (ca.state is not CAState.ACTIVE, -ca.created_at.timestamp()))


def trusted_by_scope(authorities: Sequence[CertificateAuthority]) -> dict[str, list[CertificateAuthority]]:
    """Group a snapshot's CAs into per-scope bundles (for the hot-path view)."""
    grouped: dict[str, list[CertificateAuthority]] = {}
    for ca in authorities:
        grouped.setdefault(ca.scope, []).append(ca)
    return {scope: trusted for scope, cas in grouped.items() if (trusted := _trusted(cas))}
