"""Two csscert hosts on one PostgreSQL serve one ACME service behind one public URL: a nonce one
host handed out is accepted by the other and then spent everywhere; an order made on one host is
validated, finalized and downloaded through the other."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from store_helpers import ADMIN_URL, create_database, needs_postgres
from support.acme import AcmeSetup, Client, acme_env, download_ca_file, http01_responder, problem
from support.server import CsscertServer, free_port

pytestmark = [needs_postgres]
Hosts = tuple[AcmeSetup, str, dict[str, str]]  # host A's setup, host B's URL, the http-01 answers


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    with http01_responder() as (responder_port, answers):
        for setup, host_b in _hosts(tmp_path_factory.mktemp("acme-hosts"), responder_port):
            yield setup, host_b, answers


def _hosts(tmp: Path, responder_port: int) -> Iterator[tuple[AcmeSetup, str]]:
    assert ADMIN_URL
    port_a, port_b = free_port(), free_port()
    shared = {
        "CSSCERT_DATABASE_URL": create_database(ADMIN_URL),
        "CSSCERT_MASTER_KEY": secrets.token_urlsafe(32),
        "CSSCERT_PUBLIC_URL": f"https://localhost:{port_a}",  # what a load balancer in front would be
        **acme_env(responder_port, free_port()),
    }
    a = CsscertServer(data_dir=tmp / "a" / "data", port=port_a, tls=True, env=dict(shared))
    b = CsscertServer(data_dir=tmp / "b" / "data", port=port_b, tls=True, env=dict(shared))
    try:
        for server in (a, b):
            server.data_dir.parent.mkdir(parents=True)
            server.start()
        setup = AcmeSetup(a, download_ca_file(a, tmp), responder_port, 0)
        yield setup, f"https://localhost:{port_b}"
    finally:
        for server in (a, b):
            server.stop()


def _on(other: str, url: str) -> str:
    """The same ACME URL, sent to the other host."""
    return other + url[url.index("/acme/") :]


def test_a_nonce_from_one_host_is_spent_on_the_other_and_then_everywhere(
    hosts: Hosts,
) -> None:
    setup, host_b, _ = hosts
    client = Client(setup)
    assert client.register(*setup.eab()).status_code == 201
    nonce_b = client.http.head(_on(host_b, f"{setup.base}/new-nonce")).headers["replay-nonce"]
    url = f"{setup.base}/new-order"
    payload = {"identifiers": [{"type": "dns", "value": "localhost"}]}
    assert client.post(url, payload, nonce=nonce_b).status_code == 201  # B's nonce, at A
    replay = client.post(url, payload, nonce=nonce_b, send_to=_on(host_b, url))  # again, at B
    assert replay.status_code == 400 and problem(replay) == "badNonce"


def test_an_order_made_on_one_host_completes_through_the_other(hosts: Hosts) -> None:
    setup, host_b, answers = hosts
    client = Client(setup)
    assert client.register(*setup.eab()).status_code == 201
    order = client.order("localhost")
    assert order.status_code == 201
    authz_url = order.json()["authorizations"][0]
    authz = client.post(authz_url, None, send_to=_on(host_b, authz_url)).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    thumbprint = client.key.public_key().thumbprint()

    answers[challenge["token"]] = f"{challenge['token']}.{b64encode(thumbprint).decode()}"
    answered = client.post(challenge["url"], {}, send_to=_on(host_b, challenge["url"]))
    assert answered.json()["status"] == "valid", answered.text
    ready = client.post(order.headers["location"], None).json()
    assert ready["status"] == "ready"
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    done = client.post(ready["finalize"], {"csr": b64encode(der).decode()}).json()
    assert done["status"] == "valid"
    chain = client.post(done["certificate"], None, send_to=_on(host_b, done["certificate"]))
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    leaf = x509.load_pem_x509_certificates(chain.content)[0]
    assert leaf.public_key() == key.public_key()
    again = client.post(
        ready["finalize"], {"csr": b64encode(der).decode()}, send_to=_on(host_b, ready["finalize"])
    )
    assert again.status_code == 403 and problem(again) == "orderNotReady"  # one certificate per order
