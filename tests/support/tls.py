"""Trust-anchor helpers: a real TLS listener, node certificates from the real CLI, and the TLS
clients (curl, openssl s_client, Python ``ssl``) pointed at it.

The listener is Python's ``ssl`` module serving HTTPS in a thread, with a key and certificate
written by ``csscert cert issue``: every client under test (curl, openssl s_client, Java,
Python ``ssl``/httpx, ``csscert verify``) talks to it over a real socket.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from support.http import download
from support.server import CsscertServer

NODE_BODY = b"hello from a csscert node\n"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(NODE_BODY)))
        self.end_headers()
        self.wfile.write(NODE_BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the request's own thread, so a client that rejects our
        # certificate (or never speaks) cannot stall the accept loop.
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            tls.close()


@dataclass
class TLSListener:
    """An HTTPS server on 127.0.0.1 presenting ``cert`` (with its chain) and ``key``."""

    cert: Path
    key: Path

    def __post_init__(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self._server = _TLSServer(("127.0.0.1", 0), context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def listening(cert: Path, key: Path) -> Iterator[TLSListener]:
    listener = TLSListener(cert, key)
    try:
        yield listener
    finally:
        listener.close()


@dataclass(frozen=True)
class Node:
    name: str
    key: Path
    cert: Path  # node certificate followed by the signing CA
    ca_file: Path  # the trust bundle `cert issue` wrote beside it

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert.read_bytes())[0]


def issue_node(
    server: CsscertServer,
    out_dir: Path,
    name: str,
    *,
    dns: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
    project: str | None = None,
) -> Node:
    args = ["cert", "issue", "--project", project or server.project_id, "--name", name, "--out", str(out_dir)]
    for value in dns:
        args += ["--dns", value]
    for value in ips:
        args += ["--ip", value]
    server.cli(*args)
    return Node(name, out_dir / f"{name}.key", out_dir / f"{name}.crt", out_dir / "ca.crt")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def pem_fingerprints(body: bytes) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(body)]


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


def ca_list(server: CsscertServer) -> list[dict[str, Any]]:
    return list(server.cli_json("ca", "list"))


def json_bundle(server: CsscertServer, token: str) -> list[dict[str, Any]]:
    response = download(server, token, format="json")
    assert response.status_code == 200, response.text
    return list(json.loads(response.content)["certificates"])


def python_ssl_connect(port: int, cafile: Path, host: str = "localhost") -> bytes:
    """A GET over Python's ssl with only ``cafile`` trusted; raises SSLCertVerificationError."""
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    return data


def curl(url: str, cafile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(cafile), url],
        capture_output=True,
        text=True,
        timeout=30,
    )


def s_client(port: int, cafile: Path, host: str = "localhost") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            host,
            "-verify_hostname",
            host,
            "-verify_return_error",
            "-CAfile",
            str(cafile),
            "-brief",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
