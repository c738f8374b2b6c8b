"""The CA key in an HSM: with ``CSSCERT_CA_KEY_STORE=pkcs11`` against SoftHSM2 (a token of the test's
own: SOFTHSM2_CONF points at a temporary directory), new CAs are generated inside the token, RSA and
ECDSA, sensitive and never extractable (reading the private value through PKCS#11 is refused), the
database holds only a reference and no private key structure at all, and signing (node
certificates through the real CLI, CRLs through the key interface) works, also after a restart.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from custody_helpers import issue_and_verify
from support.accounts import new_account
from support.server import CsscertServer, ServerFactory

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
if not (MODULE.exists() and shutil.which("softhsm2-util")) and os.environ.get("CI"):
    raise RuntimeError("CI must install softhsm2 (.ci/run PACKAGES)")
pytestmark = pytest.mark.skipif(not MODULE.exists(), reason="softhsm2 is not installed")

LABEL = "csscert-test"
PIN = "4711-test-pin"
# What any private key in clear looks like (PKCS#8 / traditional RSA / SEC1 EC), raw or in base64.
PRIVATE_MARKERS = [
    bytes.fromhex("020100300d06092a864886f70d0101010500"),
    bytes.fromhex("020100301306072a8648ce3d0201"),
    bytes.fromhex("020100028201"),
    bytes.fromhex("0201010420"),
    bytes.fromhex("0201010430"),
]
_B64 = re.compile(rb"[A-Za-z0-9+/=]{40,}")


@dataclass(frozen=True)
class SoftHsm:
    conf: Path
    pin_file: Path

    def env(self) -> dict[str, str]:
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "CSSCERT_CA_KEY_STORE": "pkcs11",
            "CSSCERT_PKCS11_MODULE": str(MODULE),
            "CSSCERT_PKCS11_TOKEN_LABEL": LABEL,
            "CSSCERT_PKCS11_PIN_FILE": str(self.pin_file),
        }


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    where = tmp_path_factory.mktemp("softhsm")
    (where / "tokens").mkdir()
    conf = where / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {where / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    made = subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", "so-" + PIN],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    pin_file = where / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    os.environ["SOFTHSM2_CONF"] = str(conf)  # for this process's own look into the token
    yield SoftHsm(conf, pin_file)


def _session() -> Any:
    import pkcs11

    token = pkcs11.lib(str(MODULE)).get_token(token_label=LABEL)
    return token.open(user_pin=PIN)


def _ca_reference(server: CsscertServer) -> str:
    with closing(sqlite3.connect(server.data_dir / "csscert.db", timeout=10)) as db:
        (reference,) = db.execute(
            "SELECT key_sealed FROM certificate_authorities WHERE state = 'active'"
        ).fetchone()
    return str(reference)


def _private_structures(data: bytes) -> list[str]:
    found = [f"marker {m.hex()}" for m in PRIVATE_MARKERS if m in data]
    if b"PRIVATE KEY" in data:
        found.append("PEM PRIVATE KEY")
    for run in _B64.finditer(data):
        for offset in range(4):
            chunk = run.group()[offset:].rstrip(b"=")
            try:
                decoded = base64.b64decode(chunk[: len(chunk) - len(chunk) % 4])
            except (binascii.Error, ValueError):
                continue
            found += [f"base64 marker {m.hex()}" for m in PRIVATE_MARKERS if m in decoded]
    return found


@pytest.mark.parametrize("key_type", ["rsa2048", "p256"])
def test_the_ca_key_is_made_in_the_token_never_leaves_it_and_signs_after_a_restart(
    softhsm: SoftHsm, make_server: ServerFactory, key_type: str, tmp_path: Path
) -> None:
    from pkcs11 import Attribute, ObjectClass
    from pkcs11.exceptions import AttributeSensitive

    server = make_server(extra_args=["--ca-key-type", key_type], env=softhsm.env())
    reference = _ca_reference(server)
    assert reference.startswith(f"pkcs11:token={LABEL};id=")

    session = _session()
    try:
        key = session.get_key(
            object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(reference.rsplit("id=", 1)[1])
        )
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True and key[Attribute.ALWAYS_SENSITIVE] is True
        secret_part = Attribute.PRIVATE_EXPONENT if key_type.startswith("rsa") else Attribute.VALUE
        with pytest.raises(AttributeSensitive):
            key[secret_part]
    finally:
        session.close()

    account = new_account(server, prefix="hsm")
    token = server.token(account.user, account.project_id)
    issue_and_verify(server, token, account.project_id, tmp_path / "before")
    server.restart()
    issue_and_verify(server, token, account.project_id, tmp_path / "after", name="node-2")

    for name in ("csscert.db", "csscert.db-wal"):
        path = server.data_dir / name
        if path.exists():
            assert _private_structures(path.read_bytes()) == [], name
    assert PIN not in server.log_file.read_text()


def test_the_scan_for_private_keys_finds_one(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = b"".join(pem.splitlines()[1:-1])
    assert _private_structures(b"x" * 7 + body + b"y")  # base64 at any alignment
    assert _private_structures(
        b"\x00"
        + key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def test_crls_are_signed_in_the_token_too(softhsm: SoftHsm, tmp_path: Path) -> None:
    """The key interface the CRL code uses (ca/keys.py CAKey.sign_crl), on a key the token made."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from csscert.ca.pkcs11 import Pkcs11Key, token_for
    from csscert.settings import Settings

    settings = Settings(
        data_dir=tmp_path, ca_key_store="pkcs11", pkcs11_module=MODULE, pkcs11_token_label=LABEL,
        pkcs11_pin_file=softhsm.pin_file,
    )  # fmt: skip
    token = token_for(settings)
    for key_type in ("rsa2048", "p384"):
        reference, public = token.generate(key_type, f"crl-test-{key_type}")
        signer = Pkcs11Key(token, reference, public)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"CRL test {key_type}")])
        now = dt.datetime.now(dt.UTC)
        revoked = x509.RevokedCertificateBuilder().serial_number(1234).revocation_date(now).build()
        crl = signer.sign_crl(
            x509.CertificateRevocationListBuilder()
            .issuer_name(name)
            .last_update(now)
            .next_update(now + dt.timedelta(days=1))
            .add_revoked_certificate(revoked)
        )
        assert crl.is_signature_valid(public)
        assert (
            crl.signature_hash_algorithm is not None
            and crl.signature_hash_algorithm.name == hashes.SHA256.name
        )
        assert crl.get_revoked_certificate_by_serial_number(1234) is not None


def test_an_intermediate_key_is_made_in_the_token_and_signs_under_an_openssl_root(
    softhsm: SoftHsm, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(extra_args=["--ca-key-type", "p256"], env=softhsm.env())
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key",
         "-out", "root.crt", "-subj", "/CN=HSM test root", "-days", "30",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    server.cli("ca", "intermediate", "--csr-out", str(tmp_path / "i.csr"))
    assert (
        subprocess.run(["openssl", "req", "-verify", "-noout", "-in", str(tmp_path / "i.csr")]).returncode
        == 0
    )
    (tmp_path / "ext.cnf").write_text(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n"
    )
    subprocess.run(
        ["openssl", "x509", "-req", "-in", "i.csr", "-CA", "root.crt", "-CAkey", "root.key",
         "-CAcreateserial", "-out", "i.crt", "-days", "10", "-extfile", "ext.cnf"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    server.cli(
        "ca", "intermediate", "--install", str(tmp_path / "i.crt"), "--chain", str(tmp_path / "root.crt")
    )
    assert _ca_reference(server).startswith("pkcs11:")
    account = new_account(server, prefix="hsmi")
    token = server.token(account.user, account.project_id)
    node = issue_and_verify(server, token, account.project_id, tmp_path / "nodes")
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.crt"), "-untrusted", str(node), str(node)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
