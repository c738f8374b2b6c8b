"""Certificate revocation lists: when a CA's CRL is issued, what it says, and its bytes.

A CRL is derived from the store: the CA's revoked certificates that have not expired. Every
worker of every host builds the same CRL from the same rows, so no host has to publish it:

* **Periods.** Time is cut into periods of half the CRL validity (``crl_validity_hours / 2``,
  counted from the Unix epoch). A CRL made in a period has ``nextUpdate`` = the period's start +
  the validity, so whenever a client fetches one it stays valid for at least half the validity,
  and a worker re-signs at every period start, long before ``nextUpdate``.
* **Numbers.** ``cRLNumber`` = ``period index << 32 | revocations of the CA so far``. Revocations
  are final, so the count only grows: a new revocation or a new period gives a larger number,
  and two workers that number a CRL alike list the same certificates (RFC 5280 5.2.3).
* **thisUpdate** is the period's start, or a minute before the CA's last revocation when that is
  later (a minute of slack for clients whose clocks run behind), never in the future.

With an RSA CA (PKCS#1 v1.5 signatures are deterministic) the bytes agree across workers; with
an EC CA only the signature differs, so the ETag is taken over the signed content (the TBS part).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from csscert.ca.keys import CAKey
from csscert.ca.names import AuthorityError
from csscert.model import IssuedCertificate

__all__ = [
    "REASONS",
    "CrlDocument",
    "CrlWindow",
    "build_crl",
    "crl_path",
    "parse_reason",
    "window",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SLACK = dt.timedelta(minutes=1)

# RFC 5280 5.3.1 reasons a revocation may give. certificateHold (a revocation that can be
# lifted) and removeFromCRL (delta CRLs) are not offered: a revocation here is final.
REASONS: dict[str, x509.ReasonFlags] = {
    flag.value: flag
    for flag in x509.ReasonFlags
    if flag not in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl)
}


def parse_reason(text: str) -> x509.ReasonFlags:
    """An RFC 5280 reason by its name (``keyCompromise``; case, ``-`` and ``_`` do not matter)."""
    wanted = text.strip().replace("-", "").replace("_", "").lower()
    for name, flag in REASONS.items():
        if name.lower() == wanted:
            return flag
    raise AuthorityError(f"unknown revocation reason {text!r}; use one of {', '.join(REASONS)} (RFC 5280)")


def crl_path(ca_fingerprint: str) -> str:
    """The public path of a CA's CRL (the CRL distribution point of its certificates)."""
    return f"/v1.0/crl/{ca_fingerprint}.crl"


@dataclass(frozen=True, slots=True)
class CrlWindow:
    """When a CRL made at some moment is issued and until when it holds."""

    period: int
    this_update: dt.datetime
    next_update: dt.datetime
    refresh_at: dt.datetime  # the next period's start: re-sign from then on


def window(now: dt.datetime, validity: dt.timedelta, last_revoked_at: dt.datetime | None) -> CrlWindow:
    half = validity / 2
    period = int((now - _EPOCH) / half)
    start = _EPOCH + period * half
    this_update = start
    if last_revoked_at is not None and last_revoked_at - _SLACK > start:
        this_update = min(last_revoked_at - _SLACK, now)
    return CrlWindow(period, this_update.replace(microsecond=0), start + validity, start + half)


@dataclass(frozen=True, slots=True)
class CrlDocument:
    """A signed CRL and what the HTTP answer needs."""

    der: bytes
    etag: str
    this_update: dt.datetime
    next_update: dt.datetime
    refresh_at: dt.datetime
    number: int
    entries: int
    last_modified_http: str  # thisUpdate as an HTTP date (Last-Modified), formatted once


def build_crl(
    ca_cert: x509.Certificate,
    key: CAKey,
    revoked: Sequence[IssuedCertificate],
    revoked_count: int,
    when: CrlWindow,
) -> CrlDocument:
    """Sign the CRL of ``ca_cert`` listing ``revoked`` (each with its time and reason)."""
    number = (when.period << 32) | (revoked_count & 0xFFFFFFFF)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(when.this_update)
        .next_update(when.next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for cert in revoked:
        assert cert.revoked_at is not None
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(cert.serial, 16))
            .revocation_date(cert.revoked_at.replace(microsecond=0))
        )
        reason = REASONS.get(cert.revocation_reason or "", x509.ReasonFlags.unspecified)
        if reason is not x509.ReasonFlags.unspecified:  # RFC 5280 5.3.1: absent rather than unspecified
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    crl = key.sign_crl(builder)
    der = crl.public_bytes(serialization.Encoding.DER)
    return CrlDocument(
        der=der,
        etag=f'"{hashlib.sha256(crl.tbs_certlist_bytes).hexdigest()[:32]}"',
        this_update=when.this_update,
        next_update=when.next_update,
        refresh_at=when.refresh_at,
        number=number,
        entries=len(revoked),
        last_modified_http=email.utils.format_datetime(when.this_update, usegmt=True),
    )
