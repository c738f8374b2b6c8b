"""500 CSS.9999: real internal failures under a private server, answered without internal detail.

Each case damages the data under the running server the way it happens in the field (a row
sealed under another master key, a corrupted certificate, a broken schema), checks the answer
and the log, then repairs the data and checks that the server recovers by itself.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from support.http import CSS_ERROR_KEYS
from support.server import EXIT_ERROR, CsscertServer, ServerFactory
from support.signing import sdk_sign

INTERNAL = "Failed to process the request."


@pytest.fixture(scope="module")
def server_to_damage(make_server: ServerFactory) -> tuple[CsscertServer, str]:
    """A private server (and a token for it) whose data the tests damage and then repair."""
    server = make_server()
    return server, server.token()


def _sql(
    server: CsscertServer,
    statement: str,
    params: tuple[object, ...] = (),
    changed: tuple[str, str] | None = None,
) -> list[tuple[object, ...]]:
    """Change the data the way another process would: one transaction that bumps the revision
    and records what it changed in the change log (``changed``: kind and key)."""
    with closing(sqlite3.connect(server.data_dir / "csscert.db", timeout=10)) as db, db:
        rows = db.execute(statement, params).fetchall()
        if not statement.lstrip().upper().startswith("SELECT"):
            db.execute("UPDATE revision SET value = value + 1")
            if changed is not None:
                db.execute(
                    "INSERT INTO changes (rev, kind, key, at) "
                    "SELECT value, ?, ?, CURRENT_TIMESTAMP FROM revision",
                    changed,
                )
    if not statement.lstrip().upper().startswith("SELECT"):
        # What the store does after a commit: overwrite the shared change word in place.
        with open(server.data_dir / "revision.hint", "r+b") as hint:
            hint.write(os.urandom(8))
    return rows


def _headers(server: CsscertServer, token: str, method: str = "GET") -> dict[str, str]:
    """Token headers, or (token "aksk") the bootstrap access key's signature, as the SDK makes it."""
    if token != "aksk":
        return {"X-Auth-Token": token}
    creds = server.bootstrap
    _, headers = sdk_sign(creds["access_key"], creds["secret_key"], method, server.download_url())
    return headers


def _wait_for(server: CsscertServer, token: str, status: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(server.download_url(), headers=_headers(server, token))
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response
        time.sleep(0.1)


def _seal_under(key: bytes, secret: bytes, context: str) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(b"\x01" + nonce + AESGCM(key).encrypt(nonce, secret, context.encode())).decode()


@contextmanager
def _foreign_sealed_access_key(server: CsscertServer) -> Iterator[list[str]]:
    """An access key whose secret was sealed under another master key (say, a restored backup)."""
    access = server.bootstrap["access_key"]
    (sealed,) = _sql(server, "SELECT secret_sealed FROM access_keys WHERE access = ?", (access,))[0]
    foreign = _seal_under(AESGCM.generate_key(bit_length=256), b"x" * 40, f"ak:{access}")
    changed = ("access_key", access)
    _sql(server, "UPDATE access_keys SET secret_sealed = ? WHERE access = ?", (foreign, access), changed)
    try:
        yield [str(access), "ak:", "master", "sealed"]
    finally:
        _sql(server, "UPDATE access_keys SET secret_sealed = ? WHERE access = ?", (sealed, access), changed)


@contextmanager
def _corrupt_ca_certificate(server: CsscertServer) -> Iterator[list[str]]:
    ca_id, pem, scope = _sql(server, "SELECT id, cert_pem, scope FROM certificate_authorities LIMIT 1")[0]
    broken = "-----BEGIN CERTIFICATE-----\nMIIBroken0000\n-----END CERTIFICATE-----\n"
    changed = ("ca", str(scope))
    _sql(server, "UPDATE certificate_authorities SET cert_pem = ? WHERE id = ?", (broken, ca_id), changed)
    try:
        yield [str(ca_id), "MIIBroken", "BEGIN CERTIFICATE", "ValueError", "asn1"]
    finally:
        _sql(server, "UPDATE certificate_authorities SET cert_pem = ? WHERE id = ?", (pem, ca_id), changed)


@contextmanager
def _broken_schema(server: CsscertServer) -> Iterator[list[str]]:
    # The cached bundle is dropped by a change of its scope; reloading it then meets the damage.
    changed = ("ca", "region")
    _sql(server, "ALTER TABLE certificate_authorities RENAME TO certificate_authorities_gone", (), changed)
    try:
        yield ["certificate_authorities", "sqlite", "SELECT", "no such table", str(server.data_dir)]
    finally:
        _sql(
            server, "ALTER TABLE certificate_authorities_gone RENAME TO certificate_authorities", (), changed
        )


@pytest.mark.parametrize(
    ("damage", "credential"),
    [(_foreign_sealed_access_key, "aksk"), (_corrupt_ca_certificate, "token"), (_broken_schema, "token")],
    ids=["foreign-master-key", "corrupt-ca-certificate", "broken-schema"],
)
def test_internal_failure_is_500_css_9999_without_detail(
    server_to_damage: tuple[CsscertServer, str],
    damage: Callable[[CsscertServer], AbstractContextManager[list[str]]],
    credential: str,
) -> None:
    server, token = server_to_damage
    if credential == "aksk":
        token = "aksk"  # requests are signed with the damaged access key
    good = _wait_for(server, token, 200)
    log_file = server.log_file
    with damage(server) as secrets_of_the_failure:
        failed = _wait_for(server, token, 500)
        # Consistently failing (fail closed), not one 500 and then the old data again.
        again = httpx.get(server.download_url(), headers=_headers(server, token))
        assert again.status_code == 500
        for response in (failed, again):
            request_id = response.headers["x-request-id"]
            assert response.headers["content-type"] == "application/json;charset=UTF-8"
            body = response.json()
            assert list(body) == CSS_ERROR_KEYS
            assert body == {
                "error_code": "CSS.9999",
                "error_msg": INTERNAL,
                "errCode": "CSS.9999",
                "externalMessage": f"CSS.9999 : {INTERNAL}",
                "request_id": request_id,
            }
            for detail in [*secrets_of_the_failure, "Traceback", "File ", ".py"]:
                assert detail not in response.text
        # The detail is in the log, under the request id.
        deadline = time.monotonic() + 5
        while failed.headers["x-request-id"] not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = log_file.read_text()
        at = log.index(f"request {failed.headers['x-request-id']} failed")
        assert "Traceback" in log[at : at + 20000]
        # Other routes keep working; HEAD fails the same way, with no body.
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        head = httpx.head(server.download_url(), headers=_headers(server, token, "HEAD"))
        assert head.status_code == 500 and head.content == b""
    # Repaired: the server recovers on its own and serves the same certificate as before.
    assert _wait_for(server, token, 200).content == good.content


def test_wrong_master_key_refuses_to_start(
    server_to_damage: tuple[CsscertServer, str], tmp_path: Path
) -> None:
    """A process with another master key must not write (it would poison the data): clear error."""
    server, _ = server_to_damage
    wrong = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    stranger = CsscertServer(data_dir=server.data_dir, env={"CSSCERT_MASTER_KEY": wrong})
    before = _sql(server, "SELECT value FROM revision")
    for args in (["project", "create", "intruder"], ["serve", "--port", str(stranger.port)]):
        result = stranger.cli(*args, check=False)
        assert result.returncode == EXIT_ERROR
        assert "master key" in result.stderr and "Traceback" not in result.stderr
        assert wrong not in result.stderr + result.stdout
    assert _sql(server, "SELECT value FROM revision") == before
    malformed = CsscertServer(data_dir=tmp_path / "data", env={"CSSCERT_MASTER_KEY": "too-short"})
    result = malformed.cli("project", "list", check=False)
    assert (
        result.returncode == EXIT_ERROR and "master key" in result.stderr and "Traceback" not in result.stderr
    )
