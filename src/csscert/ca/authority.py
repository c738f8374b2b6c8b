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
from csscert.ca import policy as policies
from csscert.ca.bundle import bundle_pem, trusted_first
from csscert.ca.crl import REASONS, CrlDocument, build_crl, crl_path, window
from csscert.ca.csr import check_csr
from csscert.ca.keys import PKCS11_PREFIX, CAKey, SealedKey, seal_context
from csscert.ca.names import (
    REGION_SCOPE,
    AuthorityError,
    build_subject,
    common_name,
    is_ip_address,
    parse_subject,
    scope_of,
    validate_dns_name,
    validate_ip,
    validate_name,
)
from csscert.ca.profiles import PROFILES, ProfileRule, extended_key_usage
from csscert.errors import Conflict, ResourceNotFound
from csscert.model import CAState, CertificateAuthority, IssuancePolicy, IssuedCertificate, new_id
from csscert.sealing import Sealer
from csscert.settings import KeyType, Settings
from csscert.store import NotFound, SqlStore
from csscert.store.issuance import IssuanceStore

__all__ = ["PUBLIC_BASE_URL_META", "Authority", "NodeCertificate", "generate_private_key"]

PUBLIC_BASE_URL_META = "public_base_url"  # recorded by `serve`: what the CLI puts in CRL URLs
_LIVE_SHOWN = 1000  # certificates `ca retire` lists, at most (it counts them all)
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


def normalise_serial(serial: str) -> str:
    """A serial as the store keeps it: lower-case hex without colons or leading zeros."""
    cleaned = serial.strip().lower().replace(":", "")
    if not cleaned or len(cleaned) > 48 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ResourceNotFound(f"no certificate with serial {serial[:80]!r} (serials are hex)")
    return cleaned.lstrip("0") or "0"


class Authority:
    """Creates, rotates and retires CAs, and signs node certificates, on top of the store."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings
        self._issuance = IssuanceStore(store)

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
        """Certificates signed by ``ca`` that still count: unexpired, not re-issued (superseded)
        and not revoked; at most 1000 of them, by name (:meth:`live_count` counts them all).

        One indexed query: a node counts as re-issued once a later certificate of the same
        project and name was delivered (its status then says ``superseded``).
        """
        return self._issuance.live_of_ca(ca.id, dt.datetime.now(dt.UTC), _LIVE_SHOWN)[1]

    def live_count(self, ca: CertificateAuthority) -> int:
        return self._issuance.live_of_ca(ca.id, dt.datetime.now(dt.UTC), 0)[0]

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
        count, live = self._issuance.live_of_ca(ca.id, dt.datetime.now(dt.UTC), 6)
        if count and not force:
            names = ", ".join(sorted({cert.name for cert in live})[:5])
            raise AuthorityError(
                f"{count} unexpired node certificate(s) signed by this CA are on record ({names}"
                f"{', ...' if len({cert.name for cert in live}) > 5 else ''}); "
                "re-issue them with 'csscert cert issue', revoke them with 'csscert cert revoke', "
                "or pass --force"
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
        empty_subject: x509.Name | None = None,
    ) -> NodeCertificate:
        """Sign a CSR (PEM or DER) under ``profile``, after :func:`check_csr` accepted it.

        ``origin`` records how it was asked for (``csr`` from the CLI; the API and ACME say so).
        ``empty_subject`` is the subject of a CSR that has none (ACME clients send none).
        """
        rule = _rule(profile)
        checked = check_csr(csr, rule, empty_subject=empty_subject)
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
        ips = [value for value in sans if is_ip_address(value)]
        dns = [value for value in sans if not is_ip_address(value)]
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

    def certificates_page(
        self,
        project_id: str | None,
        *,
        status: str | None = None,
        name: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[IssuedCertificate]:
        """Up to ``limit`` certificates in issue order after the serial ``after``: one indexed
        query, whatever the number on record. ``status`` is valid, superseded, revoked or
        expired (valid ones whose time is up)."""
        marker = None
        if after is not None:
            marker = self._issuance.certificate(normalise_serial(after))
            if marker is None or (project_id is not None and marker.project_id != project_id):
                raise ResourceNotFound(f"marker {after!r} is not a certificate of this project")
        now = dt.datetime.now(dt.UTC)
        if status == "expired":
            if project_id is None:
                raise AuthorityError("status 'expired' needs a project")
            return self._issuance.expired_page(project_id, now, after=marker, limit=limit)
        if status not in (None, "valid", "superseded", "revoked"):
            raise AuthorityError(f"unknown status {status!r}; use valid, expired, superseded or revoked")
        return self._issuance.page(
            project_id,
            status=status,
            name=name,
            after=marker,
            limit=limit,
            expired_before=now if status == "valid" else None,
        )

    def certificate(self, serial: str, project_id: str | None = None) -> IssuedCertificate:
        """The certificate with this serial (hex, colons and case do not matter), of ``project_id``
        when given (another project's certificate is "not found", never "forbidden")."""
        found = self._issuance.certificate(normalise_serial(serial))
        if found is None or (project_id is not None and found.project_id != project_id):
            raise ResourceNotFound(f"no certificate with serial {serial[:80]!r} in this project")
        return found

    def certificate_or_none(self, serial: str) -> IssuedCertificate | None:
        return self._issuance.certificate(normalise_serial(serial))

    def latest(self, project_id: str, name: str) -> IssuedCertificate:
        found = self._issuance.latest(project_id, name)
        if found is None:
            raise ResourceNotFound(f"no certificate named {name!r} in this project; see 'csscert cert list'")
        return found

    # -- issuance policy ------------------------------------------------------------------

    def policy(self, project_id: str) -> IssuancePolicy | None:
        """The project's issuance policy; None when it has none (the CLI's rules alone apply)."""
        return self._issuance.policy(project_id)

    def set_policy(
        self,
        project_id: str,
        allow_dns: Sequence[str] = (),
        allow_ip: Sequence[str] = (),
        max_days: int | None = None,
    ) -> IssuancePolicy:
        made = policies.make_policy(project_id, allow_dns, allow_ip, max_days)
        detail = (
            f"dns {', '.join(made.allow_dns) or '-'}; ip {', '.join(made.allow_ip) or '-'}; "
            f"max days {made.max_days or '-'}"
        )
        self._issuance.set_policy(made, audit=AuditEntry("project.policy", f"project {project_id}", detail))
        return made

    def clear_policy(self, project_id: str) -> None:
        try:
            self._issuance.clear_policy(
                project_id, audit=AuditEntry("project.policy-clear", f"project {project_id}")
            )
        except NotFound as exc:
            raise ResourceNotFound("the project has no issuance policy") from exc

    def check_policy(
        self,
        project_id: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        validity_days: int | None = None,
    ) -> None:
        """Raise :class:`~csscert.errors.PolicyViolation` naming what the project's policy does
        not allow (nothing without a policy)."""
        policies.check(self.policy(project_id), dns_names, ip_addresses, validity_days)

    # -- revocation and CRLs ----------------------------------------------------------------

    def revoke(
        self, serial: str, reason: x509.ReasonFlags, *, project_id: str | None = None
    ) -> IssuedCertificate:
        """Revoke a certificate for an RFC 5280 ``reason``: its status becomes ``revoked``, the
        CRL of its CA lists it from the next fetch on (every worker drops its cached CRL through
        the change log). Final: a revoked certificate stays revoked."""
        if reason.value not in REASONS:
            raise AuthorityError(f"{reason.value} is not offered: a revocation here is final")
        cert = self.certificate(serial, project_id)
        ca = self._issuance.authority(cert.ca_id)
        if ca is None:  # pragma: no cover - the foreign key forbids it
            raise ResourceNotFound("the certificate's CA is gone")
        audit = AuditEntry(
            "cert.revoke",
            f"node {cert.name} serial {cert.serial} project {cert.project_id}",
            f"reason {reason.value}; CA {ca.fingerprint_sha256[:16]}",
        )
        try:
            return self._issuance.revoke(cert.serial, reason.value, ca.fingerprint_sha256, audit=audit)
        except Conflict as exc:
            raise Conflict(f"certificate {cert.serial} ({cert.name}) is already revoked") from exc

    def crl_document(self, ca_fingerprint: str, now: dt.datetime | None = None) -> CrlDocument | None:
        """The current CRL of the CA with this full SHA-256 fingerprint, signed through
        :meth:`key_of`; None for an unknown CA. Two indexed queries and one signature."""
        ca = self._issuance.authority_by_fingerprint(ca_fingerprint.lower())
        if ca is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        validity = dt.timedelta(hours=self._settings.crl_validity_hours)
        when = window(now, validity, self._issuance.last_revoked_at(ca.id))
        revoked = self._issuance.revoked_of(ca.id, when.this_update - validity)
        count = self._issuance.revoked_count(ca.id)
        return build_crl(x509.load_pem_x509_certificate(ca.cert_pem), self.key_of(ca), revoked, count, when)

    def crl(self, ca_fingerprint: str) -> bytes:
        """The current CRL (DER) of the CA with this SHA-256 fingerprint."""
        document = self.crl_document(ca_fingerprint)
        if document is None:
            raise ResourceNotFound(f"no CA with SHA-256 fingerprint {ca_fingerprint[:80]!r}")
        return document.der

    def crl_url(self, ca: CertificateAuthority) -> str:
        """Where clients fetch ``ca``'s CRL: ``public_url``, else what ``serve`` recorded (a CLI
        process does not know the server's address), else this process's own address."""
        base = self._settings.public_url
        if not base:
            base = self._store.get_meta(PUBLIC_BASE_URL_META) or self._settings.public_base_url()
        return base.rstrip("/") + crl_path(ca.fingerprint_sha256)

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
        # csscert's own HTTPS certificate (origin "serve") names the listening host: it is not one
        # of the project's certificates, and a policy must not stop the server from starting.
        policy = None if order.origin == "serve" else self.policy(order.project_id)
        policies.check(policy, order.dns, order.ips, validity_days)
        days = validity_days if validity_days is not None else self._settings.node_validity_days
        if validity_days is None and policy is not None and policy.max_days is not None:
            days = min(days, policy.max_days)  # the default never breaks the project's policy
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
        crl_point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(self.crl_url(signer))],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([crl_point]), critical=False)
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
            # Microseconds: issue order within a second (listings, "latest of a name").
            created_at=dt.datetime.now(dt.UTC),
            subject=cert.subject.rfc4514_string(),
            profile=order.rule.name,
            key_type=order.key_type,
            status="valid",
            origin=order.origin,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
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
