"""The deterministic PKCS#12 truststore writer (``java_truststore``), in process.

The same entries and password give the same bytes every time (so every worker serves one ETag);
``cryptography``, ``keytool`` and ``openssl pkcs12`` read it with its password, refuse a wrong
one, and see one trusted certificate per entry, in order, with its alias and no key. Over HTTP,
with a real Java client, see ``tests/compat/test_java_truststore.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import given, settings
from hypothesis import strategies as st
from support.certificates import der, fingerprint, make_ca

# csscert internals under test (re-point here when they move).
from csscert.ca.pkcs12 import java_truststore

PASSWORD = "changeit"


@pytest.fixture(scope="module")
def two_cas() -> list[x509.Certificate]:
    return [make_ca("Truststore Root A"), make_ca("Truststore Root B")]


@pytest.fixture(scope="module")
def entries(two_cas: list[x509.Certificate]) -> list[tuple[str, bytes]]:
    return [(f"cloudsearchservice-{fingerprint(ca)[:16]}", der(ca)) for ca in two_cas]


@pytest.fixture(scope="module")
def truststore_file(entries: list[tuple[str, bytes]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("truststore") / "truststore.p12"
    path.write_bytes(java_truststore(entries, PASSWORD))
    return path


def test_the_same_entries_and_password_give_the_same_bytes(entries: list[tuple[str, bytes]]) -> None:
    first = java_truststore(entries, PASSWORD)
    assert java_truststore(list(entries), PASSWORD) == first
    assert java_truststore(entries, PASSWORD + "!") != first
    assert java_truststore(entries[:1], PASSWORD) != first
    assert java_truststore(entries[::-1], PASSWORD) != first


def test_cryptography_reads_every_certificate_in_order_with_its_alias_and_no_key(
    entries: list[tuple[str, bytes]], two_cas: list[x509.Certificate]
) -> None:
    store = pkcs12.load_pkcs12(java_truststore(entries, PASSWORD), PASSWORD.encode())
    assert store.key is None and store.cert is None
    assert [entry.certificate for entry in store.additional_certs] == two_cas
    assert [entry.friendly_name for entry in store.additional_certs] == [
        alias.encode() for alias, _ in entries
    ]


def test_cryptography_refuses_a_wrong_password(entries: list[tuple[str, bytes]]) -> None:
    blob = java_truststore(entries, PASSWORD)
    for wrong in (b"changeiT", b"", b"changeit "):
        with pytest.raises(ValueError):
            pkcs12.load_pkcs12(blob, wrong)


@settings(max_examples=15, deadline=None)
@given(
    password=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128)
)
def test_any_allowed_password_protects_the_truststore(password: str) -> None:
    ca = make_ca("Property Root")
    blob = java_truststore([("only", der(ca))], password)
    assert [e.certificate for e in pkcs12.load_pkcs12(blob, password.encode()).additional_certs] == [ca]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(blob, password.encode() + b"x")


def test_keytool_lists_every_entry_as_a_trusted_certificate(
    truststore_file: Path, entries: list[tuple[str, bytes]], two_cas: list[x509.Certificate]
) -> None:
    listed = subprocess.run(
        ["keytool", "-list", "-v", "-keystore", str(truststore_file), "-storepass", PASSWORD,
         "-storetype", "PKCS12"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "Your keystore contains 2 entries" in listed.stdout
    assert listed.stdout.count("Entry type: trustedCertEntry") == 2
    assert "PrivateKeyEntry" not in listed.stdout
    aliases = re.findall(r"^Alias name: (.+)$", listed.stdout, re.M)
    shown = [fp.replace(":", "").lower() for fp in re.findall(r"SHA256: ([0-9A-F:]+)", listed.stdout)]
    # keytool lists entries in its own order, not the file's: compare alias -> certificate pairs.
    expected = {alias: fingerprint(ca) for (alias, _), ca in zip(entries, two_cas, strict=True)}
    assert dict(zip(aliases, shown, strict=True)) == expected


def test_keytool_refuses_a_wrong_password(truststore_file: Path) -> None:
    wrong = subprocess.run(
        ["keytool", "-list", "-keystore", str(truststore_file), "-storepass", PASSWORD + "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    said = wrong.stdout + wrong.stderr
    assert "password was incorrect" in said or "ntegrity" in said


def test_openssl_verifies_the_mac_and_prints_the_certificates(
    truststore_file: Path, two_cas: list[x509.Certificate]
) -> None:
    command = ["openssl", "pkcs12", "-in", str(truststore_file), "-nokeys"]
    printed = subprocess.run([*command, "-passin", f"pass:{PASSWORD}"], capture_output=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert x509.load_pem_x509_certificates(printed.stdout) == two_cas
    assert b"PRIVATE KEY" not in printed.stdout
    refused = subprocess.run([*command, "-passin", "pass:wrong"], capture_output=True, timeout=60)
    assert refused.returncode == 1, refused.stderr
    assert b"mac verify error" in refused.stderr.lower()
