"""Revocation as TLS clients see it: after ``POST .../revoke``, ``openssl verify -crl_check``,
``openssl s_client`` and ``curl --crlfile`` with the downloaded CRL, and a Java client fetching the
CRL from the certificate's distribution point (``com.sun.security.enableCRLDP``), refuse the
revoked node's TLS server while a sibling node of the same CA still verifies.

One private server; both nodes' keys are made here (``openssl req``) and signed over the API.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support.http import download
from support.issuance import crl_url_of, openssl_csr, revoke_with_token, sign_with_token
from support.server import CsscertServer, ServerFactory
from support.tls import NODE_BODY, TLSListener, listening

PROBE = """
import java.io.InputStream;
import java.net.URL;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLException;

public class RevocationProbe {
    public static void main(String[] args) throws Exception {
        try {
            HttpsURLConnection connection = (HttpsURLConnection) new URL(args[0]).openConnection();
            connection.setConnectTimeout(10000);
            connection.setReadTimeout(10000);
            int status = connection.getResponseCode();
            try (InputStream body = connection.getInputStream()) {
                System.out.println("status " + status);
            }
        } catch (SSLException e) {
            System.out.println("TLS failure: " + e);
            System.exit(3);
        }
    }
}
"""


@dataclass
class Rig:
    server: CsscertServer
    work: Path
    ca_file: Path
    crl_pem: Path
    crl_der: bytes
    revoked: TLSListener
    sibling: TLSListener
    revoked_cert: Path
    sibling_cert: Path
    revoked_serial: str


def _node(server: CsscertServer, token: str, work: Path, name: str) -> tuple[Path, Path, dict[str, str]]:
    csr = openssl_csr(work, name, dns=("localhost",), ips=("127.0.0.1",))
    response = sign_with_token(server, token, server.project_id, csr)
    assert response.status_code == 201, response.text
    body = response.json()
    chain, key = work / f"{name}.chain.pem", work / f"{name}.key"
    chain.write_text(body["chain"])
    key.write_bytes(csr.key_pem)
    return chain, key, body


@pytest.fixture(scope="module")
def rig(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("crl")
    server = make_server()
    token = server.token()  # the bootstrap user holds certificate-issuer
    revoked_chain, revoked_key, revoked = _node(server, token, work, "node-revoked")
    sibling_chain, sibling_key, _ = _node(server, token, work, "node-sibling")
    ca_file = work / "ca.pem"
    ca_file.write_text(revoked["ca_bundle"])
    done = revoke_with_token(server, token, server.project_id, revoked["serial"], "keyCompromise")
    assert done.status_code == 200, done.text
    fetched = httpx.get(crl_url_of(revoked["certificate"].encode()), timeout=10)
    assert fetched.status_code == 200
    crl = x509.load_der_x509_crl(fetched.content)
    crl_pem = work / "ca.crl.pem"
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    with listening(revoked_chain, revoked_key) as bad, listening(sibling_chain, sibling_key) as good:
        yield Rig(
            server, work, ca_file, crl_pem, fetched.content, bad, good,
            revoked_chain, sibling_chain, revoked["serial"],
        )  # fmt: skip


def _leaf(chain: Path, work: Path) -> Path:
    leaf = work / (chain.stem + ".leaf.pem")
    leaf.write_bytes(
        x509.load_pem_x509_certificates(chain.read_bytes())[0].public_bytes(serialization.Encoding.PEM)
    )
    return leaf


def test_openssl_verify_with_the_crl_refuses_the_revoked_node_and_accepts_its_sibling(rig: Rig) -> None:
    def verify(chain: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", str(rig.ca_file), "-CRLfile", str(rig.crl_pem),
             str(_leaf(chain, rig.work))],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    refused = verify(rig.revoked_cert)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    accepted = verify(rig.sibling_cert)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_openssl_s_client_with_the_crl_refuses_the_revoked_nodes_tls_server(rig: Rig) -> None:
    def connect(listener: TLSListener) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{listener.port}", "-servername", "localhost",
             "-verify_return_error", "-crl_check", "-CRL", str(rig.crl_pem), "-CAfile", str(rig.ca_file),
             "-brief"],
            input="", capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    refused = connect(rig.revoked)
    assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr
    accepted = connect(rig.sibling)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_curl_with_the_crlfile_refuses_the_revoked_node_and_fetches_from_its_sibling(rig: Rig) -> None:
    def curl(listener: TLSListener) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", str(rig.ca_file), "--crlfile", str(rig.crl_pem),
             listener.url()],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    refused = curl(rig.revoked)
    assert refused.returncode != 0, refused.stdout
    assert "revoked" in refused.stderr.lower(), refused.stderr
    accepted = curl(rig.sibling)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == NODE_BODY.decode()


def test_the_crl_parses_with_openssl_and_names_the_serial_and_reason(rig: Rig) -> None:
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-text"],
        input=rig.crl_der,
        capture_output=True,
        timeout=30,
    )
    assert text.returncode == 0
    shown = text.stdout.decode()
    assert rig.revoked_serial.upper() in shown and "Key Compromise" in shown
    verified = subprocess.run(
        ["openssl", "crl", "-in", str(rig.crl_pem), "-CAfile", str(rig.ca_file), "-noout"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0 and "verify OK" in verified.stdout + verified.stderr


@pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK (javac, java)"
)
def test_java_with_crl_distribution_points_refuses_the_revoked_node(rig: Rig) -> None:
    classes = rig.work / "classes"
    classes.mkdir(exist_ok=True)
    source = rig.work / "RevocationProbe.java"
    source.write_text(PROBE)
    compiled = subprocess.run(
        ["javac", "-d", str(classes), str(source)], capture_output=True, text=True, timeout=120
    )
    assert compiled.returncode == 0, compiled.stderr
    response = download(rig.server, rig.server.token(), format="p12")
    assert response.status_code == 200
    truststore = rig.work / "truststore.p12"
    truststore.write_bytes(response.content)

    def java(listener: TLSListener) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["java", f"-Djavax.net.ssl.trustStore={truststore}",
             "-Djavax.net.ssl.trustStorePassword=changeit", "-Djavax.net.ssl.trustStoreType=PKCS12",
             "-Dcom.sun.net.ssl.checkRevocation=true", "-Dcom.sun.security.enableCRLDP=true",
             "-cp", str(classes), "RevocationProbe", listener.url()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    refused = java(rig.revoked)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "revoked" in refused.stdout.lower(), refused.stdout
    accepted = java(rig.sibling)  # its revocation status comes from the same CRL, fetched by Java
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.startswith("status 200")
