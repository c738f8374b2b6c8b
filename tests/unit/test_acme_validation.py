"""ACME challenge validation against real loopback servers: what passes, and every way it refuses
(an address outside the allowed networks, a redirect off the validation ports, a body past the
byte bound, a wrong key authorization, a tls-alpn-01 certificate with the wrong digest); and the
JWS parser, which answers anything with a problem document, never another exception."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from csscert.acme import jws
from csscert.acme.problems import AcmeProblem
from csscert.acme.validation import MAX_BYTES, Failure, Target, networks, validate

TOKEN = "tok-1"
KEY_AUTH = "tok-1.thumb"
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, headers, body = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def _target(http_port: int, tls_port: int = 1, allowed: str = "127.0.0.0/8") -> Target:
    return Target(http_port, tls_port, networks(allowed), 2.0)


def _http01(target: Target, name: str = "localhost") -> Failure | None:
    return asyncio.run(validate("http-01", "dns", name, TOKEN, KEY_AUTH, target))


ACME_ID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
PATH = f"/.well-known/acme-challenge/{TOKEN}"


def test_http01_passes_with_the_key_authorization(http_port: int) -> None:
    ROUTES[PATH] = (200, {}, KEY_AUTH.encode() + b"\n")
    assert _http01(_target(http_port)) is None
    assert asyncio.run(validate("http-01", "ip", "127.0.0.1", TOKEN, KEY_AUTH, _target(http_port))) is None


def test_http01_refuses_addresses_outside_the_allowed_networks(http_port: int) -> None:
    ROUTES[PATH] = (200, {}, KEY_AUTH.encode())
    failure = _http01(_target(http_port, allowed="10.0.0.0/8,fc00::/7"))
    assert (
        failure is not None and failure.kind == "connection" and "acme_validation_networks" in failure.detail
    )


def test_http01_wrong_answers(http_port: int) -> None:
    ROUTES[PATH] = (200, {}, b"tok-1.someone-else")
    assert (f := _http01(_target(http_port))) is not None and f.kind == "incorrectResponse"
    ROUTES[PATH] = (404, {}, b"")
    assert (f := _http01(_target(http_port))) is not None and f.kind == "unauthorized"
    ROUTES[PATH] = (200, {}, b"x" * (MAX_BYTES + 1))
    assert (f := _http01(_target(http_port))) is not None and "larger" in f.detail


def test_http01_follows_redirects_only_on_the_validation_ports(http_port: int) -> None:
    ROUTES[PATH] = (302, {"location": "/elsewhere"}, b"")
    ROUTES["/elsewhere"] = (200, {}, KEY_AUTH.encode())
    assert _http01(_target(http_port)) is None
    ROUTES[PATH] = (302, {"location": "http://localhost:22/x"}, b"")
    failure = _http01(_target(http_port))
    assert failure is not None and "only http/https on ports" in failure.detail
    ROUTES[PATH] = (302, {"location": "ftp://localhost/x"}, b"")
    assert _http01(_target(http_port)) is not None


def test_nothing_listening_is_a_connection_failure() -> None:
    failure = _http01(_target(1))
    assert failure is not None and failure.kind == "connection"


def _challenge_cert(tmp: Path, digest: bytes) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "acme")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_ID, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp / "c.pem", tmp / "k.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def _alpn_server(cert: Path, key: Path, alpn: list[str]) -> tuple[int, threading.Thread, Any]:
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(alpn)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return int(listener.getsockname()[1]), thread, listener


@pytest.mark.parametrize(
    ("digest_of", "alpn", "passes"),
    [
        (KEY_AUTH, ["acme-tls/1"], True),
        ("tok-1.other", ["acme-tls/1"], False),
        (KEY_AUTH, ["http/1.1"], False),
    ],
    ids=["right", "wrong-digest", "no-acme-alpn"],
)
def test_tls_alpn01(tmp_path: Path, digest_of: str, alpn: list[str], passes: bool) -> None:
    cert, key = _challenge_cert(tmp_path, hashlib.sha256(digest_of.encode()).digest())
    port, thread, listener = _alpn_server(cert, key, alpn)
    try:
        failure = asyncio.run(validate("tls-alpn-01", "dns", "localhost", TOKEN, KEY_AUTH, _target(1, port)))
    finally:
        thread.join(5)
        listener.close()
    assert (failure is None) is passes, failure and failure.detail


@given(st.binary(max_size=300))
def test_the_jws_parser_answers_garbage_with_a_problem(body: bytes) -> None:
    with contextlib.suppress(AcmeProblem):  # anything else fails the test
        jws.parse(body)


@given(
    st.dictionaries(st.sampled_from(["protected", "payload", "signature", "header"]), st.text(max_size=40))
)
def test_the_jws_parser_answers_malformed_objects_with_a_problem(obj: dict[str, str]) -> None:
    with contextlib.suppress(AcmeProblem):
        jws.parse(json.dumps(obj).encode())
