"""Real ACME clients against csscert's ACME server over TLS on loopback: certbot (PyPI) in standalone
mode with http-01, lego (Debian) with tls-alpn-01 and with http-01. Each obtains a certificate,
renews it, and a TLS server started with the result verifies with curl and openssl using only the
downloaded CloudSearchService.cer. The commands are the README's ("Renew node certificates
automatically")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from support.acme import AcmeSetup, start_acme_server
from support.server import ServerFactory
from support.tls import curl, listening, s_client

pytestmark = pytest.mark.skipif(
    shutil.which("lego") is None, reason="lego is not installed (apt-get install lego)"
)
CERTBOT = str(Path(sys.executable).with_name("certbot"))


@pytest.fixture(scope="module")
def acme(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeSetup]:
    yield start_acme_server(make_server, tmp_path_factory.mktemp("acme"))


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command[:3])} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _serial(pem: Path) -> int:
    return x509.load_pem_x509_certificates(pem.read_bytes())[0].serial_number


def _verified_by_curl_and_openssl(cert: Path, key: Path, ca_file: Path) -> None:
    with listening(cert, key) as node:
        fetched = curl(node.url("localhost"), ca_file)
        assert fetched.returncode == 0, fetched.stderr
        handshake = s_client(node.port, ca_file, "localhost")
        assert handshake.returncode == 0, handshake.stdout + handshake.stderr
        assert "Verification: OK" in handshake.stdout + handshake.stderr


def _origins(acme: AcmeSetup) -> dict[str, str]:
    return {row["serial"]: row["origin"] for row in acme.server.cli_json("cert", "list", "--all")}


def test_certbot_standalone_obtains_and_renews_with_http01(acme: AcmeSetup, tmp_path: Path) -> None:
    kid, hmac_key = acme.eab()
    dirs = ["--config-dir", str(tmp_path / "config"), "--work-dir", str(tmp_path / "work"),
            "--logs-dir", str(tmp_path / "logs")]  # fmt: skip
    env = {"REQUESTS_CA_BUNDLE": str(acme.ca_file)}
    _run(
        [CERTBOT, "certonly", "--standalone", "--non-interactive", "--agree-tos",
         "--register-unsafely-without-email", "--server", acme.directory,
         "--eab-kid", kid, "--eab-hmac-key", hmac_key,
         "--preferred-challenges", "http", "--http-01-port", str(acme.http_port),
         "-d", "localhost", "--ip-address", "127.0.0.1", "--cert-name", "node-1", *dirs],
        env,
    )  # fmt: skip
    live = tmp_path / "config" / "live" / "node-1"
    first = _serial(live / "fullchain.pem")
    _run(
        [
            CERTBOT,
            "renew",
            "--force-renewal",
            "--no-random-sleep-on-renew",
            "--non-interactive",
            "--http-01-port",
            str(acme.http_port),
            *dirs,
        ],
        env,
    )
    renewed = _serial(live / "fullchain.pem")
    assert renewed != first
    cert = x509.load_pem_x509_certificates((live / "cert.pem").read_bytes())[0]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    origins = _origins(acme)
    assert origins[format(first, "x")] == origins[format(renewed, "x")] == "acme"
    _verified_by_curl_and_openssl(live / "fullchain.pem", live / "privkey.pem", acme.ca_file)
    # certbot revoke: the serial shows up in the CRL the certificate names.
    _run([CERTBOT, "revoke", "--cert-name", "node-1", "--reason", "keycompromise", "--non-interactive",
          "--no-delete-after-revoke", *dirs], env)  # fmt: skip
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = str(points[0].full_name[0].value)
    fetched = httpx.get(crl_url, verify=acme.trust(), timeout=10)
    assert fetched.status_code == 200
    revoked = x509.load_der_x509_crl(fetched.content).get_revoked_certificate_by_serial_number(renewed)
    assert revoked is not None
    assert (
        revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )


def _lego(
    acme: AcmeSetup, path: Path, kid: str, hmac_key: str, challenge: list[str], action: list[str]
) -> None:
    _run(
        ["lego", "--server", acme.directory, "--accept-tos", "--email", "ops@example.com",
         "--eab", "--kid", kid, "--hmac", hmac_key, *challenge, "-d", "localhost",
         "--path", str(path), *action],
        {"LEGO_CA_CERTIFICATES": str(acme.ca_file)},
    )  # fmt: skip


@pytest.mark.parametrize(
    "challenge",
    [
        pytest.param(["--tls", "--tls.port", "127.0.0.1:{tls}"], id="tls-alpn-01"),
        pytest.param(["--http", "--http.port", "127.0.0.1:{http}"], id="http-01"),
    ],
)
def test_lego_obtains_and_renews(acme: AcmeSetup, tmp_path: Path, challenge: list[str]) -> None:
    kid, hmac_key = acme.eab()
    flags = [c.format(tls=acme.tls_port, http=acme.http_port) for c in challenge]
    _lego(acme, tmp_path, kid, hmac_key, flags, ["run"])
    crt = tmp_path / "certificates" / "localhost.crt"
    first = _serial(crt)
    _lego(acme, tmp_path, kid, hmac_key, flags, ["renew", "--days", "100000", "--no-random-sleep"])
    renewed = _serial(crt)
    assert renewed != first
    assert _origins(acme)[format(renewed, "x")] == "acme"
    _verified_by_curl_and_openssl(crt, tmp_path / "certificates" / "localhost.key", acme.ca_file)
