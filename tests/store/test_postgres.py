"""The same service on PostgreSQL: what the embedded SQLite deployment does must hold there too.

`.ci/run` starts a private PostgreSQL (Debian's package) and sets CSSCERT_TEST_POSTGRES_URL to
its maintenance database; each test module makes a fresh database of its own. Outside CI,
without that variable, these tests are skipped; in CI (CI=true) a missing variable fails them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from email.utils import parsedate_to_datetime
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import make_url
from support.http import download
from support.server import CsscertServer, ServerFactory, clean_env

ADMIN_URL = os.environ.get("CSSCERT_TEST_POSTGRES_URL")
if not ADMIN_URL and os.environ.get("CI"):
    raise RuntimeError("CI must provide CSSCERT_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
pytestmark = pytest.mark.skipif(not ADMIN_URL, reason="CSSCERT_TEST_POSTGRES_URL is not set")


def _fresh_database() -> str:
    assert ADMIN_URL
    url = make_url(ADMIN_URL)
    name = f"csscert_{secrets.token_hex(6)}"
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def pg_server(make_server: ServerFactory) -> CsscertServer:
    return make_server(env={"CSSCERT_DATABASE_URL": _fresh_database()}, serve_args=["--workers", "2"])


def test_download_rotation_and_revocation_on_postgresql(pg_server: CsscertServer) -> None:
    token = pg_server.token()
    first = download(pg_server, token)
    assert first.status_code == 200, first.text
    shown = pg_server.cli_json("ca", "show")
    cert = x509.load_pem_x509_certificates(first.content)[0]
    assert cert.fingerprint(hashes.SHA256()).hex() == shown["fingerprint_sha256"]
    assert parsedate_to_datetime(first.headers["last-modified"]).tzinfo is not None

    pg_server.cli("ca", "rotate")
    rotated = download(pg_server, token, format="json").json()["certificates"]
    assert [c["state"] for c in rotated] == ["active", "trusted"]
    assert rotated[1]["fingerprint_sha256"] == shown["fingerprint_sha256"]

    pg_server.cli("token", "revoke", token)
    for _ in range(4):  # two workers: each must refuse it on its very next request
        assert download(pg_server, token).status_code == 401


def test_restart_keeps_the_ca_and_nothing_secret_is_stored_in_clear(pg_server: CsscertServer) -> None:
    before = pg_server.cli_json("ca", "list")
    pg_server.restart()
    assert pg_server.cli_json("ca", "list") == before
    url = make_url(pg_server.env["CSSCERT_DATABASE_URL"])
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as conn:
        dump = "\n".join(
            str(row)
            for table in ("certificate_authorities", "access_keys", "fernet_keys", "users", "meta")
            for row in conn.execute(f"SELECT * FROM {table}").fetchall()
        )
    secret_key = pg_server.bootstrap["secret_key"]
    password = pg_server.bootstrap["password"]
    assert "PRIVATE KEY" not in dump
    assert secret_key not in dump and password not in dump
    assert "BEGIN CERTIFICATE" in dump  # the scan did read the certificate rows


def test_processes_racing_on_an_empty_postgresql_database_agree(tmp_path: Path) -> None:
    """Three `init`s racing on an empty database (one data directory each, as three hosts would
    have): the schema is built once, and they agree on one CA."""
    # the master key is shared by all three: 32 bytes, base64url
    env = clean_env(CSSCERT_DATABASE_URL=_fresh_database(), CSSCERT_MASTER_KEY="A" * 43)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "csscert", "--data-dir", str(tmp_path / f"d{i}"), "init", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    shown = [
        subprocess.run(
            [sys.executable, "-m", "csscert", "--data-dir", str(tmp_path / f"d{i}"), "ca", "list", "--json"],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        for i in range(3)
    ]  # fmt: skip
    assert len(set(shown)) == 1 and len(json.loads(shown[0])) == 1
