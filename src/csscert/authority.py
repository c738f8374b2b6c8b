"""The certificate authority: CA creation and rotation, node certificates, and the trust bundle.

All certificate logic lives here. The API only asks for a :class:`TrustBundle` and hands out
its precomputed bytes; the CLI asks for CAs and node certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.utils import format_datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

from csscert.model import CAState, CertificateAuthority, IssuedCertificate, new_id
from csscert.sealing import Sealer
from csscert.settings import CAScope, KeyType, Settings
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

    ``authorities`` may hold every CA of the scope, retired ones included: the bundle holds
    only the non-retired ones, ordered newest first (the first is the active, signing CA),
    while retired ones still count for ``last_modified``, so retiring a CA moves
    Last-Modified forward. The bytes of each representation are a pure function of the
    CAs (and, for truststores, the password): every process, worker and restart serves the
    same bytes, so the HTTP layer's strong ETag (a hash of the bytes) is stable everywhere.
    """

    def __init__(self, scope: str, authorities: Sequence[CertificateAuthority], warning_days: int) -> None:
        trusted = _trusted(authorities)
        if not trusted:
            raise AuthorityError(f"scope {scope} has no trusted CA")
        self.scope = scope
        self.authorities = tuple(trusted)
        self.certificates = tuple(x509.load_pem_x509_certificate(ca.cert_pem) for ca in self.authorities)
        self.last_modified = max(ca.changed_at for ca in authorities)
        self.last_modified_http = format_datetime(self.last_modified, usegmt=True)
        self.pem = b"".join(ca.cert_pem for ca in self.authorities)
        self._ders = tuple(cert.public_bytes(serialization.Encoding.DER) for cert in self.certificates)
        self.der = self._ders[0]
        # certs-only PKCS#7 (RFC 7030 style); its certificates are a SET OF, so in DER order
        self.p7b = pkcs7.serialize_certificates(list(self.certificates), serialization.Encoding.DER)
        self.json = json.dumps(self._metadata(), separators=(",", ":")).encode()
        soonest = min(self.authorities, key=lambda ca: ca.not_after)
        #: When the expiry warning starts (a Unix time); ``expiry_warning`` says what it is.
        self.warning_from = (soonest.not_after - dt.timedelta(days=warning_days)).timestamp()
        self._expiry_text = (
            f"{'the active' if soonest.state is CAState.ACTIVE else 'an older trusted'} CA"
            f" ({soonest.fingerprint_sha256[:16]}) expires at {soonest.not_after.isoformat()}"
        )
        self._truststores: dict[bytes, bytes] = {}

    def expiry_warning(self, now: float | None = None) -> str | None:
        """A warning for people when a trusted CA is within the warning window of notAfter."""
        moment = time.time() if now is None else now
        return self._expiry_text if moment >= self.warning_from else None

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
        """A PKCS#12 Java truststore (one ``trustedCertEntry`` per CA), MAC'd with ``password``.

        Deterministic (see :func:`java_truststore`), so the bytes and the ETag are the same in
        every process; cached per password under a hash, so no password stays in memory.
        """
        cache_key = hashlib.sha256(password.encode()).digest()
        cached = self._truststores.get(cache_key)
        if cached is not None:
            return cached
        entries = [
            (f"cloudsearchservice-{ca.fingerprint_sha256[:16]}", der)
            for ca, der in zip(self.authorities, self._ders, strict=True)
        ]
        blob = java_truststore(entries, password)
        if len(self._truststores) >= 64:
            self._truststores.clear()
        self._truststores[cache_key] = blob
        return blob


# -- PKCS#12 truststores ------------------------------------------------------------------
#
# ``cryptography`` can write Java truststores, but with random salts, so every process would
# serve different bytes (and ETags) for the same CAs. A truststore holds only public
# certificates, so it needs no encryption, only the password-keyed integrity MAC that Java
# and OpenSSL check; that much of PKCS#12 (RFC 7292) is small enough to write here, with a
# salt derived from the content. The certificate bags carry the Oracle "trusted key usage"
# attribute, which is what makes Java list them as trustedCertEntry.

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
_OID_X509_CERT = "1.2.840.113549.1.9.22.1"
_OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
_OID_JAVA_TRUSTED_USAGE = "2.16.840.1.113894.746875.1.1"
_OID_ANY_EKU = "2.5.29.37.0"
_OID_SHA256 = "2.16.840.1.101.3.4.2.1"
TRUSTSTORE_MAC_ITERATIONS = 10000


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _der(0x31, b"".join(sorted(items)))  # DER orders SET OF by encoding


def _explicit0(content: bytes) -> bytes:
    return _der(0xA0, content)


def _octets(data: bytes) -> bytes:
    return _der(0x04, data)


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray()
    for arc in (first * 40 + second, *rest):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _bmp_password(password: str) -> bytes:
    return password.encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(password: str, salt: bytes, key_id: int, iterations: int, length: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation with SHA-256 (u = 32, v = 64 bytes)."""
    u, v = 32, 64

    def stretch(data: bytes) -> bytes:  # copies of data filling a whole number of v-byte blocks
        needed = v * -(-len(data) // v)
        return (data * (needed // len(data) + 1))[:needed] if data else b""

    d_block = bytes([key_id]) * v
    i_block = bytearray(stretch(salt) + stretch(_bmp_password(password)))
    out = b""
    while len(out) < length:
        a = hashlib.sha256(d_block + bytes(i_block)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha256(a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        for start in range(0, len(i_block), v):
            block = int.from_bytes(i_block[start : start + v], "big")
            i_block[start : start + v] = ((block + b + 1) % (1 << (v * 8))).to_bytes(v, "big")
    return out[:length]


def java_truststore(entries: Sequence[tuple[str, bytes]], password: str) -> bytes:
    """A PKCS#12 truststore of ``(alias, certificate DER)`` entries, the same bytes every time."""
    bags = []
    for alias, der in entries:
        cert_bag = _seq(_oid(_OID_X509_CERT), _explicit0(_octets(der)))
        attributes = _set(
            _seq(_oid(_OID_JAVA_TRUSTED_USAGE), _set(_oid(_OID_ANY_EKU))),
            _seq(_oid(_OID_FRIENDLY_NAME), _set(_der(0x1E, alias.encode("utf-16-be")))),
        )
        bags.append(_seq(_oid(_OID_CERT_BAG), _explicit0(cert_bag), attributes))
    safe_contents = _seq(*bags)
    auth_safe = _seq(_seq(_oid(_OID_DATA), _explicit0(_octets(safe_contents))))
    # The salt only has to differ between truststores; the content is public anyway.
    salt = hashlib.sha256(b"csscert truststore mac salt\x00" + auth_safe).digest()[:16]
    mac_key = pkcs12_kdf(password, salt, 3, TRUSTSTORE_MAC_ITERATIONS, 32)
    mac = hmac.new(mac_key, auth_safe, hashlib.sha256).digest()
    mac_data = _seq(
        _seq(_seq(_oid(_OID_SHA256), b"\x05\x00"), _octets(mac)),
        _octets(salt),
        _integer(TRUSTSTORE_MAC_ITERATIONS),
    )
    return _seq(_integer(3), _seq(_oid(_OID_DATA), _explicit0(_octets(auth_safe))), mac_data)


class Authority:
    """Creates, rotates and retires CAs, and signs node certificates, on top of the store."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings

    # -- scopes -------------------------------------------------------------------------

    def scope_for(self, project_id: str) -> str:
        return scope_of(self._settings.ca_scope, project_id)

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
            raise AuthorityError(
                f"scope {scope} has no active CA; run 'csscert serve' or 'csscert ca rotate'"
            )
        return trusted[0]

    def rotate(self, scope: str) -> CertificateAuthority:
        """Make a new active CA for ``scope``; the previous active one stays trusted.

        One store transaction demotes the old CA and inserts the new one, so a crash leaves
        either the old state or the new one.
        """
        ca, _ = self._new_ca(scope)
        stamp = self._change_time(scope)
        ca = replace(ca, created_at=stamp, changed_at=stamp)
        self._store.add_authority(ca)
        return ca

    def _change_time(self, scope: str) -> dt.datetime:
        """A whole-second time for the next change of ``scope``'s bundle, later than the last.

        HTTP dates have one-second resolution: two bundle changes within one second would
        share a Last-Modified and a client's If-Modified-Since would wrongly get 304. Admin
        changes are rare, so waiting for the next second is the simple cure.
        """
        last = max((ca.changed_at.timestamp() for ca in self._store.authorities(scope)), default=0.0)
        now = time.time()
        if int(now) <= int(last) and last - now < 2:  # not when the clock stepped far back
            time.sleep(int(last) + 1 - now)
        return dt.datetime.fromtimestamp(max(time.time(), int(last) + 1), dt.UTC).replace(microsecond=0)

    def find(self, fingerprint: str) -> CertificateAuthority:
        wanted = fingerprint.lower().replace(":", "")
        matches = [ca for ca in self._store.authorities() if ca.fingerprint_sha256.startswith(wanted)]
        if len(wanted) < 8 or len(matches) != 1:
            raise AuthorityError(f"no single CA has a SHA-256 fingerprint starting with {fingerprint!r}")
        return matches[0]

    def unexpired_issued(self, ca: CertificateAuthority) -> list[IssuedCertificate]:
        """Node certificates signed by ``ca`` that are unexpired and not yet re-issued.

        A node counts as re-issued once a later certificate for the same project and node
        name was signed by another CA.
        """
        now = dt.datetime.now(dt.UTC)
        everything = self._store.issued()
        replaced_after: dict[tuple[str, str], dt.datetime] = {}
        for cert in everything:
            if cert.ca_id != ca.id:
                key = (cert.project_id, cert.name)
                replaced_after[key] = max(cert.created_at, replaced_after.get(key, cert.created_at))
        return [
            cert
            for cert in everything
            if cert.ca_id == ca.id
            and cert.not_after > now
            and not replaced_after.get((cert.project_id, cert.name), cert.created_at) > cert.created_at
        ]

    def retire(self, fingerprint: str, *, force: bool = False) -> CertificateAuthority:
        """Take a CA out of its scope's bundle; never the active (newest) one, so the bundle
        always keeps a CA that signs. See :meth:`unexpired_issued` for what ``force`` skips.
        """
        ca = self.find(fingerprint)
        if ca.state is CAState.RETIRED:
            raise AuthorityError("that CA is already retired")
        if ca.state is CAState.ACTIVE:
            raise AuthorityError("refusing to retire the active (newest) CA of its scope; rotate first")
        if len(self.trusted(ca.scope)) < 2:
            raise AuthorityError("refusing to retire the only trusted CA of its scope")
        live = self.unexpired_issued(ca)
        if live and not force:
            names = ", ".join(sorted({cert.name for cert in live})[:5])
            raise AuthorityError(
                f"{len(live)} unexpired node certificate(s) signed by this CA are on record ({names}"
                f"{', ...' if len({cert.name for cert in live}) > 5 else ''}); "
                "re-issue them with 'csscert cert issue', or pass --force"
            )
        self._change_time(ca.scope)
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
        # Capped before the addition too, so a huge --days cannot overflow the date range.
        days = min(days, (signer.not_after - now).days + 1)
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

    def forget_issued(self, record: IssuedCertificate) -> None:
        """Drop the record of a node certificate that was never delivered (its files failed)."""
        self._store.delete_issued(record.serial)

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
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
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


def scope_of(ca_scope: CAScope, project_id: str) -> str:
    """The CA scope a project's certificates come from: the region's, or its own."""
    return REGION_SCOPE if ca_scope == "region" else project_id


def group_by_scope(authorities: Sequence[CertificateAuthority]) -> dict[str, list[CertificateAuthority]]:
    """A snapshot's CAs grouped by scope, retired ones included (:class:`TrustBundle` leaves
    them out of the bundle but counts their retirement time in Last-Modified)."""
    grouped: dict[str, list[CertificateAuthority]] = {}
    for ca in authorities:
        grouped.setdefault(ca.scope, []).append(ca)
    return grouped


def has_trusted(authorities: Sequence[CertificateAuthority]) -> bool:
    return any(ca.state is not CAState.RETIRED for ca in authorities)
