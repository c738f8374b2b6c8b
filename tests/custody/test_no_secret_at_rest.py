"""No secret at rest in any encoding: every value of every registered sealed column
(csscert.custody.registry), opened here with the master key by an independent AES-GCM, is searched
for in the database file, its WAL, the server log and a backup, as raw bytes, hex, base64,
base64url and (for private keys) PEM, DER and the private integers; and so is the master key
itself, before and after a rotation. A self-test plants a secret in clear through the real CLI and
shows the search finds it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from support.accounts import new_account
from support.server import CsscertServer, ServerFactory

from csscert.custody.registry import SEALED_COLUMNS, is_sealed

_B64_RUN = re.compile(rb"[A-Za-z0-9+/=_\-]{24,}")


def master_key(data_dir: Path) -> bytes:
    text = (data_dir / "master.key").read_text().strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def open_sealed(key: bytes, sealed: str, context: str) -> bytes:
    blob = base64.b64decode(sealed)
    assert blob[:1] == b"\x01"
    return AESGCM(key).decrypt(blob[1:13], blob[13:], context.encode())


def secrets_in(data_dir: Path) -> dict[str, bytes]:
    """Every secret the registry names, opened with the master key (the test's own AES-GCM)."""
    key = master_key(data_dir)
    found: dict[str, bytes] = {"master key": key}
    with closing(sqlite3.connect(data_dir / "csscert.db", timeout=10)) as db:
        for column in SEALED_COLUMNS:
            query = f"SELECT {column.key}, {column.sealed} FROM {column.table.name}"
            for row_key, value in db.execute(query):
                if is_sealed(value):
                    found[f"{column.name}[{row_key}]"] = open_sealed(key, value, column.context(row_key))
    return found


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def forms(secret: bytes) -> dict[str, bytes]:
    """Every way ``secret`` could sit in a file."""
    shown = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": base64.b64encode(secret).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(secret).rstrip(b"="),
    }
    try:
        key = serialization.load_der_private_key(secret, password=None)
    except ValueError:
        return shown
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    for name, fmt in (
        ("pkcs8", serialization.PrivateFormat.PKCS8),
        ("traditional", serialization.PrivateFormat.TraditionalOpenSSL),
    ):
        der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        shown[f"{name}-der"] = der
        shown[f"{name}-pem-line"] = key.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()
        ).splitlines()[2]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        shown.update(d=_int_bytes(numbers.d), p=_int_bytes(numbers.p), q=_int_bytes(numbers.q))
    else:
        shown["scalar"] = _int_bytes(key.private_numbers().private_value)
    return shown


def decoded_runs(data: bytes) -> Iterable[bytes]:
    """Long base64 / base64url runs decoded at every alignment (a secret inside a bigger blob)."""
    for match in _B64_RUN.finditer(data):
        run = match.group().rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
        for offset in range(4):
            chunk = run[offset:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                yield base64.b64decode(chunk)
            except (binascii.Error, ValueError):
                continue


def search(places: dict[str, bytes], secrets: dict[str, bytes]) -> list[str]:
    hits = []
    for where, data in places.items():
        decoded = list(decoded_runs(data))
        for name, secret in secrets.items():
            for form, needle in forms(secret).items():
                if needle in data or (form == "raw" and any(needle in d for d in decoded)):
                    hits.append(f"{name} as {form} in {where}")
    return hits


def places(server: CsscertServer, *extra: Path) -> dict[str, bytes]:
    found = {}
    for path in [server.data_dir / "csscert.db", server.data_dir / "csscert.db-wal", server.log_file, *extra]:
        if path.exists():
            data = path.read_bytes()
            found[path.name] = gzip.decompress(data) if path.suffix == ".backup" else data
    return found


@pytest.fixture(scope="module")
def quiet(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> CsscertServer:
    """A server with a value in every registered sealed column."""
    server = make_server()
    new_account(server, prefix="sec")  # an AK/SK besides the bootstrap one
    server.cli("ca", "intermediate", "--csr-out", str(tmp_path_factory.mktemp("csr") / "pending.csr"))
    server.cli("acme", "eab", "create", "--user", "csscert-admin", "--project", server.project_id)
    return server


def test_no_registered_secret_nor_the_master_key_is_at_rest_in_any_encoding(
    quiet: CsscertServer, tmp_path: Path
) -> None:
    backup = tmp_path / "all.backup"
    quiet.cli("backup", str(backup))
    secrets = secrets_in(quiet.data_dir)
    assert {name.split("[")[0] for name in secrets} == {"master key", *(c.name for c in SEALED_COLUMNS)}
    assert search(places(quiet, backup), secrets) == []


def test_after_a_rotation_neither_key_nor_any_secret_is_at_rest(quiet: CsscertServer) -> None:
    old = master_key(quiet.data_dir)
    quiet.cli("master-key", "rotate")
    secrets = {**secrets_in(quiet.data_dir), "previous master key": old}
    assert search(places(quiet), secrets) == []


def test_the_search_finds_a_secret_planted_in_clear(make_server: ServerFactory) -> None:
    server = make_server()
    account = new_account(server, prefix="plant")
    # A careless operator pastes a secret key into a description: the search must see it.
    server.cli("credential", "create", "--user", account.user, "--description", account.secret)
    secrets = secrets_in(server.data_dir)
    hits = search(places(server), secrets)
    assert any(account.access in hit and "raw" in hit for hit in hits), hits
