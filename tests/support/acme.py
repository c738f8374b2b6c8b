"""ACME test helpers: a csscert server over TLS with ACME validation on loopback ports, EAB keys
from the real CLI, and a small ACME client built on certbot's own JOSE objects (``acme.jws`` over
josepy) for the refusals the real clients never provoke."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from acme import jws as acme_jws
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64decode, b64encode
from josepy.jwa import ES256, RS256
from josepy.jwk import JWK, JWKEC

from support.server import CsscertServer, ServerFactory, free_port


@dataclass
class AcmeSetup:
    """A TLS csscert with ACME, the CA file clients trust, and the validation ports."""

    server: CsscertServer
    ca_file: Path
    http_port: int
    tls_port: int

    @property
    def base(self) -> str:
        return f"https://localhost:{self.server.port}/acme/{self.server.project_id}"

    def trust(self) -> ssl.SSLContext:
        """Verify csscert with the downloaded CA file only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def directory(self) -> str:
        return f"{self.base}/directory"

    def eab(self, user: str = "csscert-admin", project: str | None = None) -> tuple[str, str]:
        created = self.server.cli_json(
            "acme", "eab", "create", "--user", user, "--project", project or self.server.project_id
        )
        return str(created["kid"]), str(created["hmac_key"])


def acme_env(http_port: int, tls_port: int) -> dict[str, str]:
    """Validation on loopback ports (the production default never reaches loopback)."""
    return {
        "CSSCERT_ACME_HTTP_PORT": str(http_port),
        "CSSCERT_ACME_TLS_PORT": str(tls_port),
        "CSSCERT_ACME_VALIDATION_NETWORKS": "127.0.0.0/8,::1/128",
        "CSSCERT_ACME_VALIDATION_TIMEOUT_SECONDS": "2",
    }


def download_ca_file(server: CsscertServer, tmp: Path) -> Path:
    """CloudSearchService.cer as every node downloads it. Fetched once without verification (trust
    on first use); every later connection (certbot, lego, curl, openssl) verifies with it."""
    response = httpx.get(
        f"https://127.0.0.1:{server.port}/v1.0/{server.project_id}/cer/download",
        headers={"X-Auth-Token": server.token()},
        verify=False,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    ca_file = tmp / "CloudSearchService.cer"
    ca_file.write_bytes(response.content)
    return ca_file


def start_acme_server(make_server: ServerFactory, tmp: Path) -> AcmeSetup:
    http_port, tls_port = free_port(), free_port()
    server = make_server(tls=True, env=acme_env(http_port, tls_port))
    return AcmeSetup(server, download_ca_file(server, tmp), http_port, tls_port)


def new_key() -> JWKEC:
    return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Client:
    """Just enough ACME to provoke each refusal: every request is a JWS signed with josepy."""

    setup: AcmeSetup
    key: JWK = field(default_factory=new_key)
    kid: str | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(verify=self.setup.trust(), timeout=20)

    def nonce(self) -> str:
        response = self.http.head(f"{self.setup.base}/new-nonce")
        assert response.status_code == 200
        return response.headers["replay-nonce"]

    def signed(
        self,
        url: str,
        payload: Any,
        *,
        nonce: str | None = None,
        key: JWK | None = None,
        kid: str | None = None,
        use_jwk: bool = False,
    ) -> bytes:
        body = b"" if payload is None else json.dumps(payload).encode()
        key = key or self.key
        kid = None if use_jwk else (kid or self.kid)
        jws = acme_jws.JWS.sign(
            body, key=key, alg=ES256 if isinstance(key, JWKEC) else RS256,
            nonce=b64decode(nonce or self.nonce()), url=url, kid=kid,
        )  # fmt: skip
        return str(jws.json_dumps()).encode()

    def post(self, url: str, payload: Any, *, send_to: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST a JWS for ``url``; ``send_to`` is where it goes when that differs (another host of
        the same service behind one public URL)."""
        body = self.signed(url, payload, **kwargs)
        return self.http.post(send_to or url, content=body, headers={"content-type": "application/jose+json"})

    def eab_binding(self, kid: str, hmac_key: str) -> dict[str, Any]:
        directory = messages.Directory.from_json(self.http.get(self.setup.directory).json())
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=self.key.public_key(), kid=kid, hmac_key=hmac_key, directory=directory
        )
        return dict(binding)

    def register(self, kid: str, hmac_key: str) -> httpx.Response:
        payload = {"termsOfServiceAgreed": True, "externalAccountBinding": self.eab_binding(kid, hmac_key)}
        response = self.post(f"{self.setup.base}/new-account", payload, use_jwk=True)
        if response.status_code == 201:
            self.kid = response.headers["location"]
        return response

    def order(self, *names: str) -> httpx.Response:
        identifiers = [{"type": "dns", "value": n} for n in names]
        return self.post(f"{self.setup.base}/new-order", {"identifiers": identifiers})


def problem(response: httpx.Response) -> str:
    """The ACME error type of a problem response (its content type checked)."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind = response.json()["type"]
    assert kind.startswith("urn:ietf:params:acme:error:")
    return str(kind.removeprefix("urn:ietf:params:acme:error:"))


class _Answers(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.answers.get(self.path.rsplit("/", 1)[-1], "").encode()
        self.send_response(200 if body else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http01_responder(port: int = 0) -> Iterator[tuple[int, dict[str, str]]]:
    """An http-01 responder on 127.0.0.1:``port``: put token -> key authorization in the dict."""
    answers: dict[str, str] = {}
    handler = type("Answers", (_Answers,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), answers
    finally:
        server.shutdown()
        server.server_close()


def obtain(client: Client, answers: dict[str, str], name: str = "localhost") -> tuple[x509.Certificate, Any]:
    """A whole order with the small client: http-01 answered through ``answers``; (leaf, key)."""
    order = client.order(name)
    assert order.status_code == 201, order.text
    authz = client.post(order.json()["authorizations"][0], None).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    answers[challenge["token"]] = (
        f"{challenge['token']}.{b64encode(client.key.public_key().thumbprint()).decode()}"
    )
    answered = client.post(challenge["url"], {})
    assert answered.json()["status"] == "valid", answered.text
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    done = client.post(order.json()["finalize"], {"csr": b64encode(der).decode()}).json()
    assert done["status"] == "valid", done
    chain = client.post(done["certificate"], None)
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    return x509.load_pem_x509_certificates(chain.content)[0], key
