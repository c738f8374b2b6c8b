"""What the download is for: a node certificate from `csscert cert issue` on a real TLS listener is
verified by curl, openssl s_client and Python ssl with the downloaded file, and rejected by a
client that trusts another csscert's CA."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.http import download
from support.server import CsscertServer, ServerFactory
from support.tls import NODE_BODY, TLSListener, issue_node, listening


def _download_ca(server: CsscertServer, token: str, target: Path) -> Path:
    response = download(server, token)
    assert response.status_code == 200, response.text
    target.write_bytes(response.content)
    return target


@pytest.fixture(scope="module")
def ca_file(server: CsscertServer, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared server's CloudSearchService.cer, as downloaded."""
    return _download_ca(server, admin_token, tmp_path_factory.mktemp("tls") / "CloudSearchService.cer")


@pytest.fixture(scope="module")
def node_listener(server: CsscertServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSListener]:
    """An HTTPS listener presenting a node certificate (localhost, 127.0.0.1) of the shared server."""
    node = issue_node(server, tmp_path_factory.mktemp("node"), "tls-clients-node")
    with listening(node.cert, node.key) as listener:
        yield listener


@pytest.fixture(scope="module")
def other_csscert_ca(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The downloaded CA file of a second, independent csscert."""
    other = make_server()
    return _download_ca(other, other.token(), tmp_path_factory.mktemp("other") / "other.cer")


def _s_client(ca_file: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca_file),
         "-verify_return_error", *extra],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip


# -- real clients verify with the downloaded file -------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_curl_verifies_the_node_with_the_download(
    ca_file: Path, node_listener: TLSListener, host: str
) -> None:
    result = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(ca_file), node_listener.url(host) + "/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == NODE_BODY.decode()


def test_openssl_s_client_verifies_the_node_name_and_ip_with_the_download(
    ca_file: Path, node_listener: TLSListener
) -> None:
    port = node_listener.port
    result = _s_client(ca_file, port, "-verify_hostname", "localhost", "-servername", "localhost")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout
    result = _s_client(ca_file, port, "-verify_ip", "127.0.0.1")
    assert result.returncode == 0, result.stdout + result.stderr
    # The checks are real: a name that is not in the certificate fails.
    result = _s_client(ca_file, port, "-verify_hostname", "elsewhere.example")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Verify return code: 62 (hostname mismatch)" in result.stdout


def test_python_ssl_verifies_the_node_with_the_download(ca_file: Path, node_listener: TLSListener) -> None:
    port = node_listener.port
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        peer = tls.getpeercert()
        assert peer is not None and ("DNS", "localhost") in peer["subjectAltName"]
    response = httpx.get(node_listener.url("localhost"), verify=context)
    assert response.status_code == 200 and response.content == NODE_BODY
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="not-in-the-cert.example"),
    ):
        pass


# -- and a client that trusts another CA refuses it -----------------------------------------


def test_clients_trusting_another_csscerts_ca_reject_the_node(
    ca_file: Path, node_listener: TLSListener, other_csscert_ca: Path
) -> None:
    assert other_csscert_ca.read_bytes() != ca_file.read_bytes()
    curl = subprocess.run(
        ["curl", "-sS", "--cacert", str(other_csscert_ca), node_listener.url("localhost") + "/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert curl.returncode == 60, (curl.returncode, curl.stderr)  # peer certificate cannot be authenticated
    s_client = _s_client(other_csscert_ca, node_listener.port, "-verify_hostname", "localhost")
    assert s_client.returncode == 1, s_client.stdout + s_client.stderr
    # The node sends its chain, so openssl meets a CA it does not trust: "self-signed ... in chain".
    assert "Verify return code: 19 (self-signed certificate in certificate chain)" in s_client.stdout
    assert "certificate verify failed" in s_client.stderr
    context = ssl.create_default_context(cafile=str(other_csscert_ca))
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", node_listener.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost"),
    ):
        pass
