"""Helpers of the key-custody tests: what a client sees of a deployment, to compare before and after."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
from support.accounts import Account
from support.server import CsscertServer
from support.signing import sdk_sign


@dataclass(frozen=True)
class Seen:
    """The bytes a token and an AK/SK download, and the CA's bundle."""

    token_download: bytes
    signed_download: bytes


def seen(server: CsscertServer, token: str, account: Account, timeout: float = 10) -> Seen:
    by_token = httpx.get(
        server.download_url(account.project_id), headers={"X-Auth-Token": token}, timeout=timeout
    )
    assert by_token.status_code == 200, by_token.text
    url, headers = sdk_sign(account.access, account.secret, "GET", server.download_url(account.project_id))
    by_signature = httpx.get(url, headers=headers, timeout=timeout)
    assert by_signature.status_code == 200, by_signature.text
    return Seen(by_token.content, by_signature.content)


def issue_and_verify(
    server: CsscertServer, token: str, project_id: str, out: Path, name: str = "node-1"
) -> Path:
    """Issue a node certificate with the CLI and check it with ``openssl verify`` against the CA
    bundle the API serves (what a cluster would trust)."""
    out.mkdir(parents=True, exist_ok=True)
    server.cli(
        "cert",
        "issue",
        "--project",
        project_id,
        "--name",
        name,
        "--dns",
        f"{name}.example",
        "--out",
        str(out),
    )
    bundle = out / "served-ca.pem"
    served = httpx.get(server.download_url(project_id), headers={"X-Auth-Token": token}, timeout=10)
    assert served.status_code == 200
    bundle.write_bytes(served.content)
    chain = str(out / f"{name}.crt")  # the node certificate, then any intermediates up to the root
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), "-untrusted", chain, chain],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return out / f"{name}.crt"


def create_database(admin_url: str) -> str:
    """A new, empty PostgreSQL database on the test server; its SQLAlchemy URL."""
    import secrets

    import psycopg
    from sqlalchemy import make_url

    url = make_url(admin_url)
    name = f"csscert_custody_{secrets.token_hex(6)}"
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)
