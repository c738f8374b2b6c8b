"""The certificate authority: CA creation, rotation and retirement, and node certificates.

All signing happens here. The API asks the bundle module for what clients must trust; the CLI
(and later the API) asks this module for CAs and node certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csscert.audit import AuditEntry
from csscert.ca.bundle import bundle_pem, trusted_first
from csscert.ca.csr import check_csr
from csscert.ca.keys import PKCS11_PREFIX, CAKey, SealedKey, seal_context
from csscert.ca.names import (
    REGION_SCOPE,
    AuthorityError,
    build_subject,
    common_name,
    parse_subject,
    scope_of,
    validate_dns_name,
    validate_ip,
    validate_name,
)
from csscert.ca.profiles import PROFILES, ProfileRule, extended_key_usage
from csscert.errors import ResourceNotFound
from csscert.model import CAState, CertificateAuthority, IssuedCertificate, new_id
from csscert.sealing import Sealer
from csscert.settings import KeyType, Settings
from csscert.store import SqlStore

__all__ = ["Authority", "NodeCertificate", "generate_private_key"]

_BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clocks run a little behind

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    return ec.generate_private_key(ec.SECP256R1() if key_type == "p256" else ec.SECP384R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _ca(ca: CertificateAuthority) -> str:
    return f"CA {ca.fingerprint_sha256[:16]} scope {ca.scope}"


@dataclass(frozen=True)
class NodeCertificate:
    """A certificate, its chain and the CA file to hand to clients (all PEM), and its key when
    csscert generated it (None for a signed CSR). ``requested_days`` is set when the validity
    asked for was cut to the CA's expiry."""

    key_pem: bytes | None = field(repr=False)
    cert_pem: bytes
    chain_pem: bytes
    ca_bundle_pem: bytes
    record: IssuedCertificate
    requested_days: int | None = None


@dataclass(frozen=True)
class _Order:
    """What to sign, once every name in it has been checked."""

    project_id: str
    name: str
    subject: x509.Name
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    rule: ProfileRule
    key_type: str
    origin: str


def _rule(profile: str) -> ProfileRule:
    try:
        return PROFILES[profile]
    except KeyError:
        raise AuthorityError(f"unknown profile {profile!r}; use node, client or admin") from None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class Authority:
    """Creates, rotates and retires CAs, and signs node certificates, on top of the store."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings

    # -- scopes -------------------------------------------------------------------------

    def scope_for(self, project_id: str) -> str:
        return scope_of(self._settings.ca_scope, project_id)

    def scopes_without_ca(self) -> list[str]:
        """Scopes that should have a CA and have none (one query, whatever the number of projects)."""
        if self._settings.ca_scope == "region":
            return [] if self._store.authorities(REGION_SCOPE) else [REGION_SCOPE]
        return self._store.projects_without_ca()

    def ensure(self, scope: str) -> bool:
        """Create the scope's first CA if it has none. True when one was created."""
        if self._store.authorities(scope):
            return False
        ca, _ = self._new_ca(scope)
        audit = AuditEntry("ca.create", _ca(ca), f"valid until {ca.not_after.isoformat()}")
        return self._store.add_authority(ca, only_if_scope_empty=True, audit=audit)

    def ensure_all(self) -> list[str]:
        return [scope for scope in self.scopes_without_ca() if self.ensure(scope)]

    # -- lifecycle ----------------------------------------------------------------------

    def authorities(self, scope: str | None = None) -> list[CertificateAuthority]:
        return self._store.authorities(scope)

    def trusted(self, scope: str) -> list[CertificateAuthority]:
        """The CAs in a scope's bundle: the active one first, then older trusted ones."""
        return trusted_first(self._store.authorities(scope))

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
        audit = AuditEntry("ca.rotate", _ca(ca), f"valid until {ca.not_after.isoformat()}")
        self._store.add_authority(ca, audit=audit)
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
        """The CA whose SHA-256 fingerprint starts with ``fingerprint`` (hex, colons optional,
        either case, at least 8 digits so that a typo cannot pick a CA by chance)."""
        wanted = fingerprint.strip().lower().replace(":", "")
        rule = "give at least 8 hex digits of the SHA-256 fingerprint, colons optional"
        if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
            raise AuthorityError(f"{fingerprint!r} is too short or not hex: {rule} (see 'csscert ca list')")
        matches = [ca for ca in self._store.authorities() if ca.fingerprint_sha256.startswith(wanted)]
        if not matches:
            raise AuthorityError(
                f"no single CA has a SHA-256 fingerprint starting with {fingerprint!r} (none matches); "
                "see 'csscert ca list'"
            )
        if len(matches) > 1:
            raise AuthorityError(
                f"no single CA has a SHA-256 fingerprint starting with {fingerprint!r} ({len(matches)} "
                f"match): {rule}, more of them"
            )
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
        self._store.retire_authority(ca.id, audit=AuditEntry("ca.retire", _ca(ca), "forced" if force else ""))
        return ca

    # -- node, client and admin certificates ------------------------------------------------

    def issue_node(
        self,
        project_id: str,
        name: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        *,
        subject: x509.Name | None = None,
        profile: str = "node",
        validity_days: int | None = None,
        key_type: KeyType | None = None,
        origin: str = "cli",
        deliver: Callable[[NodeCertificate], None] | None = None,
    ) -> NodeCertificate:
        """Generate a key, sign its certificate and hand both over, all or nothing.

        The record is written first, then ``deliver`` (e.g. writing the files) runs; if delivery
        fails the record is removed again and the error propagates. So a certificate that
        reached somebody is always on record (``ca retire`` counts it), and one that never left
        is not, except after a crash between the two steps, which leaves a record too many
        (the safe direction: ``ca retire`` then asks for ``--force``).
        """
        name = validate_name(name.strip())
        rule = _rule(profile)
        dns = tuple(validate_dns_name(value) for value in dns_names)
        ips = tuple(str(validate_ip(value)) for value in ip_addresses)
        if rule.sans_required and not dns and not ips:
            raise AuthorityError(
                f"give at least one --dns or --ip for the {rule.name} certificate (clients check them)"
            )
        subject = subject if subject is not None else build_subject(name)
        chosen: KeyType = key_type or self._settings.ca_key_type
        key = generate_private_key(chosen)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        order = _Order(project_id, name, subject, dns, ips, rule, chosen, origin)
        return self._sign(order, key.public_key(), key_pem, validity_days, deliver)

    def sign_request(
        self,
        project_id: str,
        csr: bytes,
        *,
        profile: str = "node",
        name: str | None = None,
        validity_days: int | None = None,
        origin: str = "csr",
        deliver: Callable[[NodeCertificate], None] | None = None,
    ) -> NodeCertificate:
        """Sign a CSR (PEM or DER) under ``profile``, after :func:`check_csr` accepted it.

        ``origin`` records how it was asked for (``csr`` from the CLI; the API and ACME say so).
        """
        rule = _rule(profile)
        checked = check_csr(csr, rule)
        if name is None:
            name = common_name(checked.subject)
            if name is None:
                raise AuthorityError("the CSR's subject has no CN; name the certificate with --name")
            try:
                name = validate_name(name)
            except AuthorityError as exc:
                raise AuthorityError(
                    f"the CSR's CN {name!r} is not usable as a certificate name; give one with --name"
                ) from exc
        else:
            name = validate_name(name)
        order = _Order(
            project_id,
            name,
            checked.subject,
            checked.dns_names,
            checked.ip_addresses,
            rule,
            checked.key_type,
            origin,
        )
        return self._sign(order, checked.public_key, None, validity_days, deliver)

    def renew(
        self,
        project_id: str,
        name: str,
        *,
        validity_days: int | None = None,
        deliver: Callable[[NodeCertificate], None] | None = None,
    ) -> NodeCertificate:
        """A new key and serial for the newest certificate called ``name``: same subject, names,
        profile and key type, signed by the active CA."""
        current = self.latest(project_id, name)
        if current.origin != "cli":  # csr, api, acme: the key never left its owner
            raise AuthorityError(
                f"{name} was signed from a CSR ({current.origin}), so csscert never had its key: make a "
                "new CSR with a new key and sign it with 'csscert cert sign --csr FILE'"
            )
        subject = parse_subject(current.subject) if current.subject else build_subject(name)
        sans = [value for value in current.sans.split(",") if value]
        ips = [value for value in sans if _is_ip(value)]
        dns = [value for value in sans if not _is_ip(value)]
        key_type = current.key_type if current.key_type in get_args(KeyType) else None
        return self.issue_node(
            project_id,
            name,
            dns,
            ips,
            subject=subject,
            profile=current.profile,
            validity_days=validity_days,
            key_type=key_type,  # type: ignore[arg-type]
            origin=current.origin,
            deliver=deliver,
        )

    def certificates(self, project_id: str | None = None) -> list[IssuedCertificate]:
        """Every certificate on record (oldest first), optionally of one project."""
        return [c for c in self._store.issued() if project_id is None or c.project_id == project_id]

    def latest(self, project_id: str, name: str) -> IssuedCertificate:
        matches = [c for c in self._store.issued() if c.project_id == project_id and c.name == name]
        if not matches:
            raise ResourceNotFound(f"no certificate named {name!r} in this project; see 'csscert cert list'")
        return max(matches, key=lambda c: c.created_at)

    def _sign(
        self,
        order: _Order,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        key_pem: bytes | None,
        validity_days: int | None,
        deliver: Callable[[NodeCertificate], None] | None,
    ) -> NodeCertificate:
        scope = self.scope_for(order.project_id)
        signer = self.active(scope)
        ca_cert = x509.load_pem_x509_certificate(signer.cert_pem)
        ca_key = self.key_of(signer)
        now = _now()
        days = validity_days if validity_days is not None else self._settings.node_validity_days
        if days < 1:
            raise AuthorityError("validity must be at least one day")
        # Capped before the addition too, so a huge --days cannot overflow the date range.
        capped = min(days, (signer.not_after - now).days + 1)
        not_after = min(now + dt.timedelta(days=capped), signer.not_after)
        if not_after <= now:
            raise AuthorityError("the active CA has expired; rotate it before issuing")
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in order.dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in order.ips]
        key_usage = x509.KeyUsage(
            digital_signature=True,
            key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
            content_commitment=False,
            data_encipherment=False,
            key_agreement=isinstance(public_key, ec.EllipticCurvePublicKey),
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(order.subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(extended_key_usage(order.rule), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = ca_key.sign_certificate(
            builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        record = IssuedCertificate(
            serial=format(cert.serial_number, "x"),
            ca_id=signer.id,
            project_id=order.project_id,
            name=order.name,
            sans=",".join([*order.dns, *order.ips]),
            fingerprint_sha256=_fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            created_at=now,
            subject=cert.subject.rfc4514_string(),
            profile=order.rule.name,
            key_type=order.key_type,
            status="valid",
            origin=order.origin,
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        node = NodeCertificate(
            key_pem=key_pem,
            cert_pem=cert_pem,
            chain_pem=cert_pem + signer.cert_pem + signer.chain_pem,  # up to the root
            ca_bundle_pem=bundle_pem(self.trusted(scope)),
            record=record,
            requested_days=days if capped < days else None,
        )
        audit = AuditEntry(
            "cert.issue",
            f"node {record.name} serial {record.serial} project {record.project_id}",
            f"SANs {record.sans}; CA {signer.fingerprint_sha256[:16]}; until {record.not_after.isoformat()}",
        )
        self._store.record_issued(record, audit=audit)
        if deliver is not None:
            try:
                deliver(node)
            except BaseException:
                # Never delivered: not on record either (the trail says so).
                withdrawn = AuditEntry(
                    "cert.withdraw", f"node {record.name} serial {record.serial}", "delivery failed"
                )
                self._store.delete_issued(record.serial, audit=withdrawn)
                raise
        # Only now is the new one in somebody's hands: older ones of that name become history.
        self._store.supersede_issued(record)
        return node

    # -- internals ----------------------------------------------------------------------

    def key_of(self, ca: CertificateAuthority) -> CAKey:
        """The signing key of ``ca``: every signature the authority makes goes through it."""
        if ca.key_sealed.startswith(PKCS11_PREFIX):
            from csscert.ca.pkcs11 import Pkcs11Key, token_for

            public = x509.load_pem_x509_certificate(ca.cert_pem).public_key()
            assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
            return Pkcs11Key(token_for(self._settings), ca.key_sealed, public)
        return SealedKey(ca, self._sealer)

    def _new_ca(self, scope: str) -> tuple[CertificateAuthority, PrivateKey | None]:
        settings = self._settings
        subject = parse_subject(settings.ca_subject)
        ca_id = new_id()
        key: PrivateKey | None = None
        if settings.ca_key_store == "pkcs11":  # made inside the token; only a reference is kept
            from csscert.ca.pkcs11 import Pkcs11Key, token_for

            token = token_for(settings)
            reference, public_key = token.generate(settings.ca_key_type, f"csscert-ca-{ca_id}")
            signer: CAKey = Pkcs11Key(token, reference, public_key)
        else:
            key = generate_private_key(settings.ca_key_type)
            public_key = key.public_key()
        now = _now()
        not_after = now + dt.timedelta(days=settings.ca_validity_days)
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
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
        )
        if key is not None:
            cert = builder.sign(key, hashes.SHA256())
            key_der = key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            key_sealed = self._sealer.seal(key_der, seal_context(ca_id))
        else:
            cert = signer.sign_certificate(builder)
            key_sealed = reference
        record = CertificateAuthority(
            id=ca_id,
            scope=scope,
            serial=format(cert.serial_number, "x"),
            subject=cert.subject.rfc4514_string(),
            fingerprint_sha256=_fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_sealed=key_sealed,
            state=CAState.ACTIVE,
            created_at=now,
            changed_at=now,
        )
        return record, key
