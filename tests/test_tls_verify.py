"""What the download is for: a node certificate from `csscert cert issue` on a real TLS listener is
verified by curl, openssl s_client and Python ssl with the downloaded file, and rejected by a
client that trusts another csscert's CA."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import CsscertServer, ServerFactory
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

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
    response = httpx.get(server.download_url(), headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    target.write_bytes(response.content)
    return target


@pytest.fixture(scope="module")
def issued(server: CsscertServer, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    base = tmp_path_factory.mktemp("tls")
    out = base / "node"
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", NODE,
        "--dns", "localhost", "--dns", "node-1.search.internal", "--ip", "127.0.0.1", "--ip", "::1",
        "--out", str(out),
    )
    return Issued(out, _download_ca(server, admin_token, base / "CloudSearchService.cer"), result.stdout)


@pytest.fixture(scope="module")
def other_ca(
    make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CsscertServer, Path]:
    """A second, independent csscert (its CA lives only 30 days, for the clamp test)."""
    other = make_server(extra_args=["--ca-validity-days", "30"])
    return other, _download_ca(other, other.token(), tmp_path_factory.mktemp("other") / "other.cer")


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello over TLS\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_port(issued: Issued) -> Iterator[int]:
    """A real HTTPS server (Python's ssl) using NODE.crt (with its chain) and NODE.key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.crt, issued.key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


# -- the files ------------------------------------------------------------------------------


def test_issued_files(issued: Issued, server: CsscertServer) -> None:
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
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    ]
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == "sha256"
    # Default validity: one year from now (the start is back-dated a few minutes for skewed clocks).
    now = dt.datetime.now(dt.UTC)
    assert abs(leaf.not_valid_after_utc - (now + dt.timedelta(days=365))) < dt.timedelta(minutes=5)
    assert now - dt.timedelta(minutes=10) <= leaf.not_valid_before_utc <= now
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    assert f"{NODE}.key" in issued.stdout and "valid until" in issued.stdout


def test_validity_never_past_the_ca(other_ca: tuple[CsscertServer, Path], tmp_path: Path) -> None:
    other, ca_file = other_ca
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    for days in ([], ["--days", "3650"]):
        out = tmp_path / f"out{len(days)}"
        other.cli("cert", "issue", "--project", other.project_id, "--name", "n", "--dns", "localhost",
                  "--out", str(out), *days)
        leaf = x509.load_pem_x509_certificates((out / "n.crt").read_bytes())[0]
        assert leaf.not_valid_after_utc == ca.not_valid_after_utc
    out = tmp_path / "short"
    other.cli("cert", "issue", "--project", other.project_id, "--name", "n", "--ip", "10.0.0.1",
              "--days", "7", "--out", str(out))
    leaf = x509.load_pem_x509_certificates((out / "n.crt").read_bytes())[0]
    lifetime = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=7) - dt.timedelta(minutes=5) < lifetime <= dt.timedelta(days=7)


# -- real clients verify with the downloaded file -------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_curl_verifies_with_the_download(issued: Issued, tls_port: int, host: str) -> None:
    result = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(issued.ca_file), f"https://{host}:{tls_port}/"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello over TLS\n"


def _s_client(ca_file: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca_file),
         "-verify_return_error", *extra],
        input="", capture_output=True, text=True, timeout=30,
    )


def test_openssl_s_client_verifies_with_the_download(issued: Issued, tls_port: int) -> None:
    result = _s_client(issued.ca_file, tls_port, "-verify_hostname", "localhost", "-servername", "localhost")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout
    result = _s_client(issued.ca_file, tls_port, "-verify_ip", "127.0.0.1")
    assert result.returncode == 0, result.stdout + result.stderr
    # The checks are real: a name that is not in the certificate fails.
    result = _s_client(issued.ca_file, tls_port, "-verify_hostname", "elsewhere.example")
    assert result.returncode != 0


def test_python_ssl_verifies_with_the_download(issued: Issued, tls_port: int) -> None:
    context = ssl.create_default_context(cafile=str(issued.ca_file))
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw, context.wrap_socket(
        raw, server_hostname="localhost"
    ) as tls:
        peer = tls.getpeercert()
        assert ("DNS", "localhost") in peer["subjectAltName"]
    response = httpx.get(f"https://localhost:{tls_port}/", verify=context)
    assert response.status_code == 200 and response.text == "hello over TLS\n"
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(
        ("127.0.0.1", tls_port), timeout=10
    ) as raw, context.wrap_socket(raw, server_hostname="not-in-the-cert.example"):
        pass


# -- and a client that trusts another CA refuses it -----------------------------------------


def test_clients_trusting_another_ca_reject_it(
    issued: Issued, tls_port: int, other_ca: tuple[CsscertServer, Path]
) -> None:
    _, other_file = other_ca
    assert other_file.read_bytes() != issued.ca_file.read_bytes()
    curl = subprocess.run(
        ["curl", "-sS", "--cacert", str(other_file), f"https://localhost:{tls_port}/"],
        capture_output=True, text=True, timeout=30,
    )
    assert curl.returncode == 60, (curl.returncode, curl.stderr)  # peer certificate cannot be authenticated
    s_client = _s_client(other_file, tls_port, "-verify_hostname", "localhost")
    assert s_client.returncode != 0
    # The node sends its chain, so openssl meets a CA it does not trust: "self-signed ... in chain".
    assert "Verify return code: 19 (self-signed certificate in certificate chain)" in s_client.stdout
    assert "certificate verify failed" in s_client.stderr
    context = ssl.create_default_context(cafile=str(other_file))
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(
        ("127.0.0.1", tls_port), timeout=10
    ) as raw, context.wrap_socket(raw, server_hostname="localhost"):
        pass


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
        "cert", "issue", "--project", server.project_id, "--name", "bad", option, value, "--out", str(out),
        check=False,
    )
    assert result.returncode != 0
    kind = "DNS name" if option == "--dns" else "IP address"
    assert f"{value!r} is not a valid {kind}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_cert_issue_refuses_existing_files(server: CsscertServer, issued: Issued) -> None:
    before = {p.name: p.read_bytes() for p in issued.out.iterdir()}
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", NODE, "--dns", "localhost",
        "--out", str(issued.out), check=False,
    )
    assert result.returncode != 0
    assert "refusing to overwrite" in result.stderr and str(issued.key) in result.stderr
    assert {p.name: p.read_bytes() for p in issued.out.iterdir()} == before
    # A ca.crt that is not this CA bundle is not replaced either (nor is anything issued).
    other = issued.out.parent / "other-ca"
    other.mkdir(exist_ok=True)
    (other / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot ours\n-----END CERTIFICATE-----\n")
    result = server.cli(
        "cert", "issue", "--project", server.project_id, "--name", "node-2", "--dns", "localhost",
        "--out", str(other), check=False,
    )
    assert result.returncode != 0 and str(other / "ca.crt") in result.stderr
    assert not (other / "node-2.key").exists()


def test_cert_issue_refuses_other_bad_input(server: CsscertServer, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["--dns", "localhost", "--out", str(a_file)], "is not a directory"),
        (["--out", str(tmp_path / "none")], "at least one --dns or --ip"),
        (["--dns", "localhost", "--days", "0", "--out", str(tmp_path / "zero")], "--days"),
    ]
    for args, message in cases:
        result = server.cli(
            "cert", "issue", "--project", server.project_id, "--name", "x", *args, check=False
        )
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    unknown = server.cli("cert", "issue", "--project", "no-such-project", "--name", "x", "--dns", "localhost",
                         "--out", str(tmp_path / "unknown"), check=False)
    assert unknown.returncode != 0 and "no project" in unknown.stderr
