"""``TrustBundle``, in process: which CAs a scope's bundle holds, in which order, and its validators.

Active first, then the other trusted CAs newest first; retired CAs are left out but their
retirement still moves Last-Modified; ``der`` is the active CA; the expiry warning starts
``warning_days`` before the soonest notAfter of a CA in the bundle. How the API serves these
bytes is in ``tests/api/test_formats.py``; rotation end to end in ``tests/ca/test_rotation.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from email.utils import parsedate_to_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from support.certificates import der, fingerprint, make_ca, pem

# csscert internals under test (re-point here when they move).
from csscert.ca import AuthorityError, TrustBundle
from csscert.ca.pkcs12 import java_truststore
from csscert.model import CAState, CertificateAuthority

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def record(
    cert: x509.Certificate, state: CAState, *, created: dt.datetime, changed: dt.datetime | None = None
) -> CertificateAuthority:
    """The store's record of ``cert``, as the authority would have written it."""
    return CertificateAuthority(
        id=fingerprint(cert)[:32],
        scope="region",
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(),
        fingerprint_sha256=fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        cert_pem=pem(cert),
        key_sealed="not used here",
        state=state,
        created_at=created,
        changed_at=changed or created,
    )


@pytest.fixture(scope="module")
def generations() -> dict[str, CertificateAuthority]:
    """Four CA generations of one scope: the oldest retired, two trusted, the newest active."""
    certs = {name: make_ca(f"Root {name}") for name in ("retired", "older", "newer", "active")}
    return {
        "retired": record(certs["retired"], CAState.RETIRED, created=NOW - 40 * DAY, changed=NOW - DAY),
        "older": record(certs["older"], CAState.TRUSTED, created=NOW - 30 * DAY, changed=NOW - 10 * DAY),
        "newer": record(certs["newer"], CAState.TRUSTED, created=NOW - 20 * DAY, changed=NOW - 5 * DAY),
        "active": record(certs["active"], CAState.ACTIVE, created=NOW - 5 * DAY),
    }


def test_the_active_ca_comes_first_then_trusted_ones_newest_first_and_retired_ones_not_at_all(
    generations: dict[str, CertificateAuthority],
) -> None:
    shuffled = [generations[name] for name in ("older", "retired", "active", "newer")]
    bundle = TrustBundle("region", shuffled, warning_days=90)
    expected = [generations[name] for name in ("active", "newer", "older")]
    assert list(bundle.authorities) == expected
    assert bundle.pem == b"".join(ca.cert_pem for ca in expected)
    assert [fingerprint(c) for c in x509.load_pem_x509_certificates(bundle.pem)] == [
        ca.fingerprint_sha256 for ca in expected
    ]


def test_the_active_ca_is_first_even_when_a_trusted_one_is_newer() -> None:
    active = record(make_ca("Restored Root"), CAState.ACTIVE, created=NOW - 100 * DAY)
    trusted = record(make_ca("Newer Trusted Root"), CAState.TRUSTED, created=NOW - DAY)
    bundle = TrustBundle("region", [trusted, active], warning_days=0)
    assert [ca.state for ca in bundle.authorities] == [CAState.ACTIVE, CAState.TRUSTED]
    assert bundle.der == der(x509.load_pem_x509_certificate(active.cert_pem))


def test_der_is_the_active_ca_alone(generations: dict[str, CertificateAuthority]) -> None:
    bundle = TrustBundle("region", list(generations.values()), warning_days=90)
    assert fingerprint(x509.load_der_x509_certificate(bundle.der)) == generations["active"].fingerprint_sha256


def test_p7b_and_json_hold_every_trusted_ca(generations: dict[str, CertificateAuthority]) -> None:
    bundle = TrustBundle("region", list(generations.values()), warning_days=90)
    trusted = [generations[name] for name in ("active", "newer", "older")]
    in_p7b = pkcs7.load_der_pkcs7_certificates(bundle.p7b)
    assert sorted(fingerprint(c) for c in in_p7b) == sorted(ca.fingerprint_sha256 for ca in trusted)
    metadata = json.loads(bundle.json)
    assert metadata["scope"] == "region"
    listed = [(c["fingerprint_sha256"], c["state"]) for c in metadata["certificates"]]
    assert listed == [(ca.fingerprint_sha256, ca.state.value) for ca in trusted]


def test_a_retirement_still_moves_last_modified(generations: dict[str, CertificateAuthority]) -> None:
    everything = list(generations.values())
    bundle = TrustBundle("region", everything, warning_days=90)
    assert bundle.last_modified == NOW - DAY  # the retirement, the latest change of all
    assert parsedate_to_datetime(bundle.last_modified_http) == NOW - DAY
    without_retired = TrustBundle("region", [ca for ca in everything if ca.state is not CAState.RETIRED], 90)
    assert without_retired.last_modified == generations["active"].changed_at
    assert without_retired.pem == bundle.pem  # the same bundle, only the validator differs


def test_a_scope_with_only_retired_cas_has_no_bundle(generations: dict[str, CertificateAuthority]) -> None:
    with pytest.raises(AuthorityError, match="no trusted CA"):
        TrustBundle("region", [generations["retired"]], warning_days=90)


def test_the_expiry_warning_starts_warning_days_before_the_soonest_trusted_not_after() -> None:
    soon = record(make_ca("Expiring Root", days=30), CAState.TRUSTED, created=NOW - DAY)
    active = record(make_ca("Fresh Root", days=3650), CAState.ACTIVE, created=NOW)
    bundle = TrustBundle("region", [soon, active], warning_days=20)
    starts = (soon.not_after - 20 * DAY).timestamp()
    assert bundle.warning_from == starts
    assert bundle.expiry_warning(starts - 1) is None
    warning = bundle.expiry_warning(starts)
    assert warning is not None
    assert "an older trusted CA" in warning and soon.fingerprint_sha256[:16] in warning
    assert soon.not_after.isoformat() in warning
    assert bundle.expiry_warning(starts + 40 * 86400) == warning


def test_the_warning_names_the_active_ca_and_ignores_retired_ones() -> None:
    retired = record(make_ca("Old Root", days=2), CAState.RETIRED, created=NOW - DAY)
    active = record(make_ca("Short Root", days=30), CAState.ACTIVE, created=NOW)
    bundle = TrustBundle("region", [retired, active], warning_days=90)
    warning = bundle.expiry_warning()
    assert warning is not None and warning.startswith("the active CA")
    assert active.not_after.isoformat() in warning
    far = TrustBundle("region", [retired, active], warning_days=0)
    assert far.expiry_warning() is None and far.expiry_warning(active.not_after.timestamp()) is not None


def test_the_truststore_is_the_deterministic_pkcs12_of_the_bundle_in_order(
    generations: dict[str, CertificateAuthority],
) -> None:
    bundle = TrustBundle("region", list(generations.values()), warning_days=90)
    trusted = bundle.authorities
    blob = bundle.truststore("s3cret-pass")
    assert bundle.truststore("s3cret-pass") is blob  # built once per password
    expected_entries = [
        (f"cloudsearchservice-{ca.fingerprint_sha256[:16]}", der(x509.load_pem_x509_certificate(ca.cert_pem)))
        for ca in trusted
    ]
    assert blob == java_truststore(expected_entries, "s3cret-pass")
    again = TrustBundle("region", list(generations.values())[::-1], warning_days=90)
    assert again.truststore("s3cret-pass") == blob  # another process, the same bytes
    loaded = pkcs12.load_pkcs12(blob, b"s3cret-pass")
    assert [fingerprint(e.certificate) for e in loaded.additional_certs] == [
        ca.fingerprint_sha256 for ca in trusted
    ]
