"""CAs csscert did not make itself: an imported CA (``ca import``) and csscert as an intermediate
under a corporate root (``ca intermediate --csr-out`` then ``--install``).

Both end as an ordinary CA record of a scope, so rotation, retirement, the bundle and signing
work on them unchanged; what differs is ``chain_pem``, the certificates above the CA up to and
including its root. The rule for what clients must trust (:func:`csscert.ca.bundle.trust_anchor`):
a root CA is trusted itself; for an intermediate the bundle holds the root at the top of its
chain, and every node certificate carries the whole chain (node, CA, ..., root).

Every certificate and key given is checked before anything is stored: the certificate must be a
CA (basicConstraints cA, keyCertSign when key usage is present) and current, the key must be its
key, and each certificate of the chain must have signed the one below it, ending in a
self-signed root.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csscert.audit import AuditEntry
from csscert.ca.authority import Authority, generate_private_key
from csscert.ca.keys import seal_context
from csscert.ca.names import AuthorityError, parse_subject
from csscert.model import CAState, CertificateAuthority, new_id
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import SqlStore
from csscert.store.custody import CustodyStore, PendingAuthority

__all__ = ["ExternalAuthorities", "check_chain", "load_certificates", "load_private_key"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise AuthorityError(f"{what} holds no PEM or DER certificate") from None
    return certs


def load_private_key(data: bytes, what: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise AuthorityError(
            f"{what} is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise AuthorityError(f"{what} holds no unencrypted PEM or DER private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise AuthorityError(f"{what}: only RSA and ECDSA CA keys are supported")
    return key


def _check_is_ca(cert: x509.Certificate, what: str) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise AuthorityError(f"{what} is not a CA certificate (basicConstraints cA is not set)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise AuthorityError(f"{what} may not sign certificates (keyUsage lacks keyCertSign)")
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise AuthorityError(
            f"{what} is not valid now (valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()})"
        )


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def check_chain(cert: x509.Certificate, chain: list[x509.Certificate]) -> list[x509.Certificate]:
    """``chain`` ordered from ``cert``'s issuer up to the root, every link checked (whatever order
    the file had). A self-signed ``cert`` takes no chain; any other needs one up to a root."""
    if _signed_by(cert, cert):
        if chain:
            raise AuthorityError("the CA certificate is self-signed (a root): give no --chain")
        return []
    if not chain:
        raise AuthorityError(
            "the CA certificate is not self-signed: "
            "give the certificates above it up to the root with --chain"
        )
    ordered: list[x509.Certificate] = []
    remaining = list(chain)
    current = cert
    while remaining:
        issuer = next((c for c in remaining if _signed_by(current, c)), None)
        if issuer is None:
            raise AuthorityError(
                f"the chain does not continue above {current.subject.rfc4514_string()}: no certificate in "
                "--chain signed it"
            )
        _check_is_ca(issuer, f"the chain certificate {issuer.subject.rfc4514_string()}")
        ordered.append(issuer)
        remaining.remove(issuer)
        current = issuer
        if _signed_by(current, current):
            break
    if not _signed_by(current, current):
        raise AuthorityError(
            "the chain ends without its root: add the self-signed root certificate to --chain"
        )
    return ordered


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _same_key(cert: x509.Certificate, public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == public.public_bytes(*spki)


@dataclass(frozen=True)
class Intermediate:
    """A pending intermediate: the CSR to have signed by the corporate root."""

    id: str
    csr_pem: bytes


class ExternalAuthorities:
    """Import a CA, or become an intermediate; every result is a CA record of the scope."""

    def __init__(self, authority: Authority, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._authority = authority
        self._store = store
        self._custody = CustodyStore(store)
        self._sealer = sealer
        self._settings = settings

    def _record(
        self,
        scope: str,
        ca_id: str,
        cert: x509.Certificate,
        chain: list[x509.Certificate],
        key_sealed: str,
        state: CAState,
    ) -> CertificateAuthority:
        stamp = self._authority._change_time(scope)  # bundle changes one second apart (Last-Modified)
        return CertificateAuthority(
            id=ca_id,
            scope=scope,
            serial=format(cert.serial_number, "x"),
            subject=cert.subject.rfc4514_string(),
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_sealed=key_sealed,
            state=state,
            created_at=stamp,
            changed_at=stamp,
            chain_pem=_pem(chain),
        )

    def import_ca(
        self, scope: str, cert_data: bytes, key_data: bytes, chain_data: bytes | None, *, active: bool
    ) -> CertificateAuthority:
        """An existing CA (its certificate, key and chain) as the scope's active CA (the previous
        active one stays trusted) or as one more trusted CA."""
        certs = load_certificates(cert_data, "--cert")
        if len(certs) != 1:
            raise AuthorityError(
                "--cert must hold exactly one certificate (put the ones above it in --chain)"
            )
        cert = certs[0]
        _check_is_ca(cert, "--cert")
        key = load_private_key(key_data, "--key")
        if not _same_key(cert, key.public_key()):
            raise AuthorityError("--key is not the key of the --cert certificate")
        chain = check_chain(cert, load_certificates(chain_data, "--chain") if chain_data else [])
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        if any(ca.fingerprint_sha256 == fingerprint for ca in self._store.authorities()):
            raise AuthorityError("that CA is already known (see 'csscert ca list')")
        ca_id = new_id()
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        state = CAState.ACTIVE if active else CAState.TRUSTED
        record = self._record(scope, ca_id, cert, chain, self._sealer.seal(der, seal_context(ca_id)), state)
        audit = AuditEntry(
            "ca.import",
            f"CA {fingerprint[:16]} scope {scope}",
            f"as {state.value}; {cert.subject.rfc4514_string()}",
        )
        if active:
            self._store.add_authority(record, audit=audit)
        else:
            self._custody.add_trusted_authority(record, audit=audit)
        return record

    def request_intermediate(self, scope: str, subject: str | None = None) -> Intermediate:
        """A new key (kept sealed, pending) and a CSR for it, to be signed as a CA by another root."""
        name = parse_subject(subject or self._settings.ca_subject)
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
        )  # fmt: skip
        pending_id = new_id()
        if self._settings.ca_key_store == "pkcs11":  # the key is made in the token and stays there
            from csscert.ca.pkcs11 import Pkcs11Key, token_for

            token = token_for(self._settings)
            key_sealed, public = token.generate(self._settings.ca_key_type, f"csscert-ca-{pending_id}")
            csr = Pkcs11Key(token, key_sealed, public).sign_csr(builder)
        else:
            key = generate_private_key(self._settings.ca_key_type)
            csr = builder.sign(key, hashes.SHA256())
            der = key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            key_sealed = self._sealer.seal(der, seal_context(pending_id))
        csr_pem = csr.public_bytes(serialization.Encoding.PEM)
        self._custody.add_pending(
            PendingAuthority(pending_id, scope, csr_pem, key_sealed, dt.datetime.now(dt.UTC)),
            audit=AuditEntry(
                "ca.intermediate-request", f"pending CA {pending_id} scope {scope}", name.rfc4514_string()
            ),
        )
        return Intermediate(pending_id, csr_pem)

    def install_intermediate(self, scope: str, cert_data: bytes, chain_data: bytes) -> CertificateAuthority:
        """The signed certificate of a pending intermediate (and the chain up to the root) makes it
        the scope's active CA; the pending key moves over unchanged (same id, same seal)."""
        certs = load_certificates(cert_data, "--install")
        if len(certs) != 1:
            raise AuthorityError(
                "--install must hold exactly the one signed certificate (the rest goes in --chain)"
            )
        cert = certs[0]
        _check_is_ca(cert, "the signed certificate")
        pending = next(
            (p for p in self._custody.pending(scope) if _same_key(cert, _csr_key(p.csr_pem))), None
        )
        if pending is None:
            raise AuthorityError(
                "no pending intermediate of this scope has the key of that certificate: sign the CSR "
                "'csscert ca intermediate --csr-out' wrote"
            )
        chain = check_chain(cert, load_certificates(chain_data, "--chain"))
        record = self._record(scope, pending.id, cert, chain, pending.key_sealed, CAState.ACTIVE)
        audit = AuditEntry(
            "ca.intermediate-install",
            f"CA {record.fingerprint_sha256[:16]} scope {scope}",
            f"under {chain[-1].subject.rfc4514_string()}",
        )
        self._custody.install_pending(pending.id, record, audit=audit)
        return record


def _csr_key(csr_pem: bytes) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    key = x509.load_pem_x509_csr(csr_pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key
