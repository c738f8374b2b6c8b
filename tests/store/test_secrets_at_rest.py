"""No secret in clear at rest: the SQLite file (and its WAL) hold no private key, secret key or password.

The test does not trust the code's own idea of "sealed": it opens the sealed CA keys itself with
the master key (AES-256-GCM, record id as associated data), proves they are the real keys of the
downloaded certificate, and then searches the raw database bytes for those keys in every form
(PEM, DER, base64 of DER at any alignment, the private integers) and for any PKCS#8 structure at
all. A scanner self-test shows the search finds a key when one is there.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from support.keystone import password_login
from support.server import CsscertServer, ServerFactory

# The AlgorithmIdentifier that follows "version 0" in a PKCS#8 PrivateKeyInfo.
# (And the start of a traditional RSAPrivateKey: version 0, then a long modulus.)
PKCS8_MARKERS = {
    "rsa": bytes.fromhex("020100300d06092a864886f70d0101010500"),
    "ec": bytes.fromhex("020100301306072a8648ce3d0201"),
    "rsa-traditional": bytes.fromhex("020100028201"),
}
_B64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n\\n]{80,}")
PASSWORD = "correct horse battery staple"


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def key_forms(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, bytes]:
    """Every way a private key could sit in a file."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forms = {
        "pkcs8-der": der,
        "traditional-der": key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        "pkcs8-base64": base64.b64encode(der)[64:128],  # a whole PEM line, and part of unbroken base64
    }
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        forms.update(d=_int_bytes(numbers.d), p=_int_bytes(numbers.p), q=_int_bytes(numbers.q))
    else:
        forms["scalar"] = _int_bytes(key.private_numbers().private_value)
    return forms


def decoded_base64_runs(data: bytes) -> Iterable[bytes]:
    """Every long base64 run (PEM bodies, sealed blobs, JSON-escaped text), decoded at all 4 alignments."""
    for match in _B64_RUN.finditer(data):
        run = re.sub(rb"\\n|[\r\n=]", b"", match.group())
        for offset in range(4):
            chunk = run[offset:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                yield base64.b64decode(chunk)
            except (binascii.Error, ValueError):
                continue


def clear_key_material(data: bytes) -> list[str]:
    """What in ``data`` looks like a private key in clear (empty list: nothing)."""
    found = []
    if b"PRIVATE KEY" in data:
        found.append("PEM 'PRIVATE KEY' marker")
    for begin in re.finditer(rb"-----BEGIN ([A-Z0-9 ]+)-----", data):
        if begin.group(1) != b"CERTIFICATE":
            found.append(f"PEM block {begin.group(1)!r}")
    for name, marker in PKCS8_MARKERS.items():
        if marker in data:
            found.append(f"DER PKCS#8 {name} key")
        if any(marker in decoded for decoded in decoded_base64_runs(data)):
            found.append(f"base64 PKCS#8 {name} key")
    return found


@dataclass
class Sealed:
    data_dir: Path
    master: bytes = field(init=False)

    def __post_init__(self) -> None:
        text = (self.data_dir / "master.key").read_text().strip()
        self.master = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    @staticmethod
    def open_with(key: bytes, sealed: str, context: str) -> bytes:
        blob = base64.b64decode(sealed)
        assert blob[:1] == b"\x01"
        return AESGCM(key).decrypt(blob[1:13], blob[13:], context.encode())

    def open(self, sealed: str, context: str) -> bytes:
        return self.open_with(self.master, sealed, context)


def rows(data_dir: Path, query: str) -> list[tuple[str, ...]]:
    with closing(sqlite3.connect(data_dir / "csscert.db", timeout=10)) as db:
        return [tuple(str(v) for v in row) for row in db.execute(query)]


def db_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data_dir.glob("csscert.db*"))}


#: A private server, and every secret it was given or made, in clear.
ServerAndSecrets = tuple[CsscertServer, dict[str, bytes]]


@pytest.fixture(scope="module")
def server_with_every_secret(
    make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> ServerAndSecrets:
    """A private server that has made every kind of secret; returns it and those secrets in clear."""
    server = make_server(extra_args=["--ca-scope", "project"])
    project = server.cli("project", "create", "secrets").stdout.strip()
    server.cli("user", "create", "alice", "--project", project, "--password-stdin", input=PASSWORD + "\n")
    credential = server.cli_json("credential", "create", "--user", "alice")
    out = tmp_path_factory.mktemp("secrets") / "node"
    server.cli("cert", "issue", "--project", project, "--name", "n1", "--dns", "localhost", "--out", str(out))
    # A password login through the API puts the password in a request body.
    body = password_login(PASSWORD, user="alice", domain="csscert", project_id=project)
    login = httpx.post(f"{server.url}/v3/auth/tokens", json=body)
    assert login.status_code == 201, login.text
    token = login.headers["x-subject-token"]
    assert httpx.get(server.download_url(project), headers={"X-Auth-Token": token}).status_code == 200
    bootstrap = server.bootstrap
    secrets = {
        "bootstrap secret key": bootstrap["secret_key"].encode(),
        "bootstrap password": bootstrap["password"].encode(),
        "new secret key": credential["secret"].encode(),
        "user password": PASSWORD.encode(),
        "master key": (server.data_dir / "master.key").read_text().strip().encode(),
    }
    node_key = serialization.load_pem_private_key((out / "n1.key").read_bytes(), password=None)
    assert isinstance(node_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    secrets.update({f"node key {k}": v for k, v in key_forms(node_key).items()})
    return server, secrets


def test_the_test_opens_the_real_ca_keys(server_with_every_secret: ServerAndSecrets) -> None:
    """Positive control: the sealed rows are the real keys, so searching for them means something."""
    server, _ = server_with_every_secret
    sealed = Sealed(server.data_dir)
    cas = rows(server.data_dir, "SELECT id, cert_pem, key_sealed FROM certificate_authorities")
    assert len(cas) == 2  # the region's and project "secrets"' own
    for ca_id, cert_pem, key_sealed in cas:
        key = serialization.load_der_private_key(sealed.open(key_sealed, f"ca:{ca_id}"), password=None)
        assert key.public_key() == x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    access, sk_sealed = rows(server.data_dir, "SELECT access, secret_sealed FROM access_keys")[0]
    assert sealed.open(sk_sealed, f"ak:{access}").decode() in (
        server.bootstrap["secret_key"],
        *[v.decode() for k, v in server_with_every_secret[1].items() if "secret key" in k],
    )


def test_sealed_blobs_do_not_open_without_the_master_key(server_with_every_secret: ServerAndSecrets) -> None:
    server, _ = server_with_every_secret
    sealed = Sealed(server.data_dir)
    cas = rows(server.data_dir, "SELECT id, key_sealed FROM certificate_authorities")
    other_key = AESGCM.generate_key(bit_length=256)
    for index, (ca_id, key_sealed) in enumerate(cas):
        with pytest.raises(InvalidTag):
            Sealed.open_with(other_key, key_sealed, f"ca:{ca_id}")
        # Bound to its row: the right key with another row's id does not open it either.
        other_id = cas[(index + 1) % len(cas)][0]
        with pytest.raises(InvalidTag):
            sealed.open(key_sealed, f"ca:{other_id}")
        # Flipping one byte of the ciphertext is detected.
        blob = bytearray(base64.b64decode(key_sealed))
        blob[20] ^= 1
        with pytest.raises(InvalidTag):
            sealed.open(base64.b64encode(bytes(blob)).decode(), f"ca:{ca_id}")
    for key_id, key_sealed in rows(server.data_dir, "SELECT id, key_sealed FROM fernet_keys"):
        with pytest.raises(InvalidTag):
            Sealed.open_with(other_key, key_sealed, f"fernet:{key_id}")


def _all_secrets(server: CsscertServer, secrets: dict[str, bytes]) -> dict[str, bytes]:
    sealed = Sealed(server.data_dir)
    found = dict(secrets)
    for ca_id, key_sealed in rows(server.data_dir, "SELECT id, key_sealed FROM certificate_authorities"):
        key = serialization.load_der_private_key(sealed.open(key_sealed, f"ca:{ca_id}"), password=None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        found.update({f"CA {ca_id} key {k}": v for k, v in key_forms(key).items()})
    for key_id, key_sealed in rows(server.data_dir, "SELECT id, key_sealed FROM fernet_keys"):
        fernet_key = sealed.open(key_sealed, f"fernet:{key_id}")
        found[f"token key {key_id}"] = fernet_key
        found[f"token key {key_id} raw"] = base64.urlsafe_b64decode(fernet_key)
    return found


def _assert_clean(files: dict[str, bytes], secrets: dict[str, bytes]) -> None:
    assert "csscert.db" in files
    for name, data in files.items():
        assert clear_key_material(data) == [], name
        for label, secret in secrets.items():
            assert len(secret) >= 16, label  # long enough that a chance match is impossible
            assert secret not in data, f"{label} in clear in {name}"


def test_database_and_wal_hold_no_secret_in_clear(server_with_every_secret: ServerAndSecrets) -> None:
    server, secrets = server_with_every_secret
    everything = _all_secrets(server, secrets)
    live = db_files(server.data_dir)
    assert "csscert.db-wal" in live  # the running server's recent writes are in the WAL: scanned too
    _assert_clean(live, everything)
    # After a clean stop the WAL is folded into the database file: check that state too.
    server.stop()
    try:
        _assert_clean(db_files(server.data_dir), everything)
    finally:
        server.start()


def test_the_log_holds_no_secret(server_with_every_secret: ServerAndSecrets) -> None:
    server, secrets = server_with_every_secret
    log = server.log_file.read_bytes()
    assert b"listening" in log  # the right file
    assert clear_key_material(log) == []
    for label, secret in _all_secrets(server, secrets).items():
        assert secret not in log, label


def test_the_scanner_finds_keys_that_are_there(server_with_every_secret: ServerAndSecrets) -> None:
    """The same search over a database-like buffer with a key planted in each form finds it."""
    server, _ = server_with_every_secret
    db = db_files(server.data_dir)["csscert.db"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = b"".join(pem.splitlines()[1:-1])
    ec_der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    plants = {
        "pem": pem,
        "der": der,
        "ec der": ec_der,
        "bare base64, misaligned": b"AB" + body,
        "base64 in json": json.dumps({"k": base64.b64encode(der).decode()}).encode(),
        "escaped newlines": json.dumps({"k": pem.decode()}).encode(),
    }
    for label, plant in plants.items():
        half = len(db) // 2
        planted = db[:half] + os.urandom(3) + plant + b"\x00" + db[half:]
        assert clear_key_material(planted) != [], label
