"""The trust bundle of one CA scope and every representation of it the download serves.

A :class:`TrustBundle` is built from the CAs of one scope as the store holds them at one moment
and is then only read; its bytes are a pure function of those CAs, so every worker, host and
restart serves the same bytes and the same strong ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Sequence
from email.utils import format_datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from csscert.ca.names import AuthorityError
from csscert.ca.pkcs12 import java_truststore
from csscert.model import CAState, CertificateAuthority

__all__ = [
    "TrustBundle",
    "bundle_pem",
    "group_by_scope",
    "has_trusted",
    "trust_anchor",
    "trust_anchors",
    "trusted_first",
]

_TRUSTSTORES_KEPT = 64


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
        trusted = trusted_first(authorities)
        if not trusted:
            raise AuthorityError(f"scope {scope} has no trusted CA")
        self.scope = scope
        self.authorities = tuple(trusted)
        anchors = trust_anchors(self.authorities)
        self._anchor_states = tuple(ca.state for ca, _ in anchors)
        self.certificates = tuple(x509.load_pem_x509_certificate(pem) for _, pem in anchors)
        self._fingerprints = tuple(cert.fingerprint(hashes.SHA256()).hex() for cert in self.certificates)
        self.last_modified = max(ca.changed_at for ca in authorities)
        self.last_modified_http = format_datetime(self.last_modified, usegmt=True)
        self.pem = b"".join(pem for _, pem in anchors)
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
        #: What the API derives from this bundle (bytes, ETag, headers per format): it hangs here so
        #: that it dies with the bundle (docs/architecture.md, "Cache lifetimes").
        self.representations: dict[tuple[str, bytes], object] = {}

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
                    "fingerprint_sha256": fingerprint,
                    "fingerprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - pinning clients want it
                    "not_before": cert.not_valid_before_utc.isoformat(),
                    "not_after": cert.not_valid_after_utc.isoformat(),
                    "state": state.value,
                }
                for state, cert, fingerprint in zip(
                    self._anchor_states, self.certificates, self._fingerprints, strict=True
                )
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
            (f"cloudsearchservice-{fingerprint[:16]}", der)
            for fingerprint, der in zip(self._fingerprints, self._ders, strict=True)
        ]
        blob = java_truststore(entries, password)
        if len(self._truststores) >= _TRUSTSTORES_KEPT:
            self._truststores.clear()
        self._truststores[cache_key] = blob
        return blob


def trust_anchor(ca: CertificateAuthority) -> bytes:
    """What a client must trust for ``ca`` (PEM): the CA itself when it is a root (every CA csscert
    makes, or an imported self-signed one); the root at the top of its chain when it is an
    intermediate (imported with a chain, or installed by ``ca intermediate``): node certificates
    then carry the chain up to that root."""
    if not ca.chain_pem:
        return ca.cert_pem
    return x509.load_pem_x509_certificates(ca.chain_pem)[-1].public_bytes(serialization.Encoding.PEM)


def trust_anchors(authorities: Sequence[CertificateAuthority]) -> list[tuple[CertificateAuthority, bytes]]:
    """The anchors of ``authorities`` in their order, each once (intermediates under one root
    share it), with the first CA that brought each."""
    seen: set[bytes] = set()
    anchors = []
    for ca in authorities:
        pem = trust_anchor(ca)
        if pem not in seen:
            seen.add(pem)
            anchors.append((ca, pem))
    return anchors


def bundle_pem(authorities: Sequence[CertificateAuthority]) -> bytes:
    """The PEM trust bundle of a scope's trusted CAs (see :func:`trust_anchor`)."""
    return b"".join(pem for _, pem in trust_anchors(authorities))


def trusted_first(authorities: Sequence[CertificateAuthority]) -> list[CertificateAuthority]:
    """The CAs in a scope's bundle: the active one first, then older trusted ones, newest first."""
    live = [ca for ca in authorities if ca.state is not CAState.RETIRED]
    return sorted(live, key=lambda ca: (ca.state is not CAState.ACTIVE, -ca.created_at.timestamp()))


def group_by_scope(authorities: Sequence[CertificateAuthority]) -> dict[str, list[CertificateAuthority]]:
    """CAs grouped by scope, retired ones included (:class:`TrustBundle` leaves them out of the
    bundle but counts their retirement time in Last-Modified)."""
    grouped: dict[str, list[CertificateAuthority]] = {}
    for ca in authorities:
        grouped.setdefault(ca.scope, []).append(ca)
    return grouped


def has_trusted(authorities: Sequence[CertificateAuthority]) -> bool:
    return any(ca.state is not CAState.RETIRED for ca in authorities)
