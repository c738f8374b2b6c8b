"""Your own CA: a CA made by ``openssl req -x509`` imported with ``ca import`` serves and signs; and
csscert as an intermediate under an openssl-made root (``ca intermediate --csr-out`` / ``--install``):
the download serves the root, node certificates carry the chain, and curl given only the root
verifies a TLS server that presents a node certificate. Rotation and retirement keep working.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from support.accounts import Account, new_account
from support.server import CsscertServer, ServerFactory, free_port

CA_EXTENSIONS = [
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
]


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def make_root(where: Path, name: str, key: str = "rsa:2048") -> tuple[Path, Path]:
    where.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", key, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-subj", f"/O=Example Corp/CN={name}", "-days", "30", *CA_EXTENSIONS, cwd=where)  # fmt: skip
    return where / f"{name}.crt", where / f"{name}.key"


def served(server: CsscertServer, account: Account, token: str) -> list[x509.Certificate]:
    answer = httpx.get(server.download_url(account.project_id), headers={"X-Auth-Token": token}, timeout=10)
    assert answer.status_code == 200
    return x509.load_pem_x509_certificates(answer.content)


def fingerprint(path_or_cert: Path | x509.Certificate) -> str:
    cert = (
        path_or_cert
        if isinstance(path_or_cert, x509.Certificate)
        else x509.load_pem_x509_certificate(path_or_cert.read_bytes())
    )
    return cert.fingerprint(hashes.SHA256()).hex()


def verify(ca_file: Path, chain_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_file), "-untrusted", str(chain_file), str(chain_file)],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.fixture
def fresh(make_server: ServerFactory) -> tuple[CsscertServer, Account, str]:
    server = make_server()
    account = new_account(server, prefix="ext")
    return server, account, server.token(account.user, account.project_id)


def test_a_ca_made_by_openssl_is_imported_serves_and_signs_and_rotates_away(
    fresh: tuple[CsscertServer, Account, str], tmp_path: Path
) -> None:
    server, account, token = fresh
    ca_crt, ca_key = make_root(tmp_path / "corp", "Imported CA", key="ec:" + str(_p256(tmp_path)))
    imported = server.cli_json("ca", "import", "--cert", str(ca_crt), "--key", str(ca_key))
    assert imported["state"] == "active" and imported["fingerprint_sha256"] == fingerprint(ca_crt)

    bundle = served(server, account, token)
    assert fingerprint(bundle[0]) == fingerprint(ca_crt) and len(bundle) == 2  # the old CA stays trusted

    out = tmp_path / "nodes"
    server.cli(
        "cert",
        "issue",
        "--project",
        account.project_id,
        "--name",
        "n1",
        "--dns",
        "n1.example",
        "--out",
        str(out),
    )
    assert verify(ca_crt, out / "n1.crt").returncode == 0  # the openssl CA alone trusts it

    # rotation and retirement keep working around it
    server.cli("ca", "rotate")
    server.cli("ca", "retire", fingerprint(ca_crt)[:16], "--force")
    assert fingerprint(ca_crt) not in {fingerprint(c) for c in served(server, account, token)}


def test_import_refuses_a_key_of_another_certificate_and_a_non_ca_in_one_line(
    fresh: tuple[CsscertServer, Account, str], tmp_path: Path
) -> None:
    server, _, _ = fresh
    ca_crt, _ = make_root(tmp_path / "a", "A")
    _, other_key = make_root(tmp_path / "b", "B")
    refused = server.cli("ca", "import", "--cert", str(ca_crt), "--key", str(other_key), check=False)
    assert (
        refused.returncode == 1
        and refused.stderr.strip() == "error: --key is not the key of the --cert certificate"
    )
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    not_a_ca = ["-subj", "/CN=leaf", "-days", "3", "-addext", "basicConstraints=critical,CA:FALSE"]
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "l.key",
        "-out",
        "l.crt",
        *not_a_ca,
        cwd=leaf,
    )
    refused = server.cli(
        "ca", "import", "--cert", str(leaf / "l.crt"), "--key", str(leaf / "l.key"), check=False
    )
    assert refused.returncode == 1 and "not a CA certificate" in refused.stderr
    assert len(server.cli_json("ca", "list")) == 1  # nothing was added


@contextlib.contextmanager
def tls_server(cert: Path, key: Path, chain: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-cert", str(cert), "-key", str(key),
         "-cert_chain", str(chain), "-www", "-quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def test_an_intermediate_under_an_openssl_root_verifies_end_to_end_with_curl_given_only_the_root(
    fresh: tuple[CsscertServer, Account, str], tmp_path: Path
) -> None:
    server, account, token = fresh
    root_crt, root_key = make_root(tmp_path / "root", "Corporate Root")
    csr = tmp_path / "intermediate.csr"
    server.cli("ca", "intermediate", "--csr-out", str(csr))
    ext = tmp_path / "ext.cnf"
    ext.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(root_crt), "-CAkey", str(root_key), "-CAcreateserial",
            "-out", "intermediate.crt", "-days", "20", "-extfile", str(ext), cwd=tmp_path)  # fmt: skip
    server.cli(
        "ca", "intermediate", "--install", str(tmp_path / "intermediate.crt"), "--chain", str(root_crt)
    )

    bundle = served(server, account, token)
    assert fingerprint(bundle[0]) == fingerprint(root_crt)  # clients trust the root
    out = tmp_path / "nodes"
    server.cli(
        "cert",
        "issue",
        "--project",
        account.project_id,
        "--name",
        "localhost",
        "--dns",
        "localhost",
        "--out",
        str(out),
    )
    chain = x509.load_pem_x509_certificates((out / "localhost.crt").read_bytes())
    assert [fingerprint(c) for c in chain[1:]] == [
        fingerprint(tmp_path / "intermediate.crt"),
        fingerprint(root_crt),
    ]
    assert verify(root_crt, out / "localhost.crt").returncode == 0

    rest = tmp_path / "rest.pem"
    rest.write_bytes((out / "localhost.crt").read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1])
    with tls_server(out / "localhost.crt", out / "localhost.key", rest) as port:
        curl = subprocess.run(
            ["curl", "-sS", "--fail", "--max-time", "10", "--cacert", str(root_crt), f"https://localhost:{port}/"],
            capture_output=True, text=True,
        )  # fmt: skip
    assert curl.returncode == 0, curl.stderr

    # the intermediate survives a restart and rotates like any CA
    server.restart()
    assert fingerprint(served(server, account, token)[0]) == fingerprint(root_crt)
    server.cli("ca", "rotate")


def _p256(tmp_path: Path) -> Path:
    params = tmp_path / "p256.pem"
    openssl("ecparam", "-name", "prime256v1", "-out", str(params), cwd=tmp_path)
    return params
