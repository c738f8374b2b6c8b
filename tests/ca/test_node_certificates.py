"""Node certificates from `csscert cert issue`: the files, their extensions and validity (clamped
to the CA's), and every input the command refuses before writing anything.

That real TLS clients verify these certificates with the download is in
``tests/compat/test_tls_clients.py``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sqlite3
import stat
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.http import download
from support.server import EXIT_ERROR, EXIT_USAGE, CsscertServer, ServerFactory

NODE = "node-1"


@dataclass
class Issued:
    out: Path
    ca_file: Path  # the downloaded CloudSearchService.cer
    stdout: str

    @property
    def key(self) -> Path:
        return self.out / f"{NODE}.key"

    @property
    def crt(self) -> Path:
        return self.out / f"{NODE}.crt"

    @property
    def bundle(self) -> Path:
        return self.out / "ca.crt"


def _download_ca(server: CsscertServer, token: str, target: Path) -> Path:
    response = download(server, token)
    assert response.status_code == 200, response.text
    target.write_bytes(response.content)
    return target


@pytest.fixture(scope="module")
def issued(server: CsscertServer, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    base = tmp_path_factory.mktemp("tls")
    out = base / "node"
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        NODE,
        "--dns",
        "localhost",
        "--dns",
        "node-1.search.internal",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
        "--out",
        str(out),
    )
    return Issued(out, _download_ca(server, admin_token, base / "CloudSearchService.cer"), result.stdout)


@pytest.fixture(scope="module")
def thirty_day_ca(
    make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CsscertServer, Path]:
    """A second, independent csscert (its CA lives only 30 days, for the clamp test)."""
    other = make_server(extra_args=["--ca-validity-days", "30"])
    return other, _download_ca(other, other.token(), tmp_path_factory.mktemp("other") / "other.cer")


# -- the files ------------------------------------------------------------------------------


def test_cert_issue_writes_a_0600_key_the_chain_and_the_ca_bundle(
    issued: Issued, server: CsscertServer
) -> None:
    assert sorted(p.name for p in issued.out.iterdir()) == sorted([f"{NODE}.key", f"{NODE}.crt", "ca.crt"])
    assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    key_pem = issued.key.read_bytes()
    key = serialization.load_pem_private_key(key_pem, password=None)
    # PKCS#8, unencrypted: the file is exactly that encoding of the key it holds.
    assert key_pem == key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    chain = x509.load_pem_x509_certificates(issued.crt.read_bytes())
    downloaded = x509.load_pem_x509_certificates(issued.ca_file.read_bytes())
    assert len(chain) == 2
    leaf, ca = chain
    assert ca == downloaded[0]
    assert issued.bundle.read_bytes() == issued.ca_file.read_bytes()
    leaf.verify_directly_issued_by(ca)
    assert leaf.public_key() == key.public_key()

    assert leaf.subject.rfc4514_string() == f"CN={NODE}"
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node-1.search.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == "sha256"
    # Default validity: one year from now (the start is back-dated a few minutes for skewed clocks).
    now = dt.datetime.now(dt.UTC)
    assert abs(leaf.not_valid_after_utc - (now + dt.timedelta(days=365))) < dt.timedelta(minutes=5)
    assert now - dt.timedelta(minutes=10) <= leaf.not_valid_before_utc <= now
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    assert f"{NODE}.key" in issued.stdout and "valid until" in issued.stdout


def test_validity_never_past_the_ca(thirty_day_ca: tuple[CsscertServer, Path], tmp_path: Path) -> None:
    other, ca_file = thirty_day_ca
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    for days in ([], ["--days", "3650"]):
        out = tmp_path / f"out{len(days)}"
        other.cli(
            "cert",
            "issue",
            "--project",
            other.project_id,
            "--name",
            "n",
            "--dns",
            "localhost",
            "--out",
            str(out),
            *days,
        )
        leaf = x509.load_pem_x509_certificates((out / "n.crt").read_bytes())[0]
        assert leaf.not_valid_after_utc == ca.not_valid_after_utc
    out = tmp_path / "short"
    other.cli(
        "cert",
        "issue",
        "--project",
        other.project_id,
        "--name",
        "n",
        "--ip",
        "10.0.0.1",
        "--days",
        "7",
        "--out",
        str(out),
    )
    leaf = x509.load_pem_x509_certificates((out / "n.crt").read_bytes())[0]
    lifetime = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=7) - dt.timedelta(minutes=5) < lifetime <= dt.timedelta(days=7)


# -- cert issue refuses bad input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--dns", "under_score.example"),
        ("--dns", "-leading.example"),
        ("--dns", "double..dot.example"),
        ("--dns", "spa ce.example"),
        ("--dns", "*.com"),
        ("--dns", "a" * 64 + ".example"),
        ("--ip", "999.1.1.1"),
        ("--ip", "10.0.0"),
        ("--ip", "localhost"),
        ("--ip", "::g"),
    ],
)
def test_cert_issue_refuses_malformed_names(
    server: CsscertServer, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "out"
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        "bad",
        option,
        value,
        "--out",
        str(out),
        check=False,
    )
    assert result.returncode == EXIT_ERROR
    kind = "DNS name" if option == "--dns" else "IP address"
    assert f"{value!r} is not a valid {kind}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_cert_issue_refuses_existing_files(server: CsscertServer, issued: Issued) -> None:
    before = {p.name: p.read_bytes() for p in issued.out.iterdir()}
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        NODE,
        "--dns",
        "localhost",
        "--out",
        str(issued.out),
        check=False,
    )
    assert result.returncode == EXIT_ERROR
    assert "refusing to overwrite" in result.stderr and str(issued.key) in result.stderr
    assert {p.name: p.read_bytes() for p in issued.out.iterdir()} == before
    # A ca.crt that is not this CA bundle is not replaced either (nor is anything issued).
    other = issued.out.parent / "other-ca"
    other.mkdir(exist_ok=True)
    (other / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot ours\n-----END CERTIFICATE-----\n")
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", "node-2", "--dns", "localhost",
        "--out", str(other), check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_ERROR and str(other / "ca.crt") in result.stderr
    assert not (other / "node-2.key").exists()


def test_cert_issue_refuses_other_bad_input(server: CsscertServer, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["--dns", "localhost", "--out", str(a_file)], EXIT_ERROR, "is not a directory"),
        (["--out", str(tmp_path / "none")], EXIT_ERROR, "at least one --dns or --ip"),
        (["--dns", "localhost", "--days", "0", "--out", str(tmp_path / "zero")], EXIT_USAGE, "--days"),
    ]
    for args, code, message in cases:
        result = server.cli(
            "cert", "issue", "--project", server.project_id, "--name", "x", *args, check=False
        )
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    unknown = server.cli(
        "cert",
        "issue",
        "--project",
        "no-such-project",
        "--name",
        "x",
        "--dns",
        "localhost",
        "--out",
        str(tmp_path / "unknown"),
        check=False,
    )
    assert unknown.returncode == EXIT_ERROR and "no project" in unknown.stderr


def _issued_count(server: CsscertServer) -> int:
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db:
        return int(db.execute("SELECT count(*) FROM issued_certificates").fetchone()[0])


def test_a_node_named_ca_is_refused_before_anything_is_issued(server: CsscertServer, tmp_path: Path) -> None:
    before = _issued_count(server)
    out = tmp_path / "out"
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", "ca", "--dns", "ca.example",
        "--out", str(out), check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_ERROR, result.stderr
    assert "ca.crt" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    assert _issued_count(server) == before


@pytest.mark.parametrize("days", ["0", "5000000", "10000000000"])
def test_out_of_range_validity_is_a_usage_error(server: CsscertServer, tmp_path: Path, days: str) -> None:
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", "n", "--dns", "n.example",
        "--out", str(tmp_path), "--days", days, check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "--days" in result.stderr and "Traceback" not in result.stderr


def test_an_ip_given_as_a_dns_name_is_refused(server: CsscertServer, tmp_path: Path) -> None:
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", "ipdns", "--dns", "127.0.0.1",
        "--out", str(tmp_path), check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_ERROR and "--ip" in result.stderr
    assert list(tmp_path.iterdir()) == []
