"""The first thing a newcomer does: start, download, compare with `csscert ca show`."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from support.server import EXIT_ERROR, CsscertServer, ServerFactory


def _download(server: CsscertServer, token: str) -> httpx.Response:
    response = httpx.get(server.download_url(), headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response


def _assert_ca_extensions(cert: x509.Certificate) -> None:
    """What every csscert CA must carry (RFC 5280 4.2.1.2, 4.2.1.3, 4.2.1.9)."""
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature and not ku.value.key_encipherment
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)  # self-signed with its own key


def test_download_is_the_ca_that_ca_show_reports(server: CsscertServer, admin_token: str) -> None:
    response = _download(server, admin_token)
    certs = x509.load_pem_x509_certificates(response.content)
    shown = server.cli_json("ca", "show")
    assert certs[0].fingerprint(hashes.SHA256()).hex() == shown["fingerprint_sha256"]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="CloudSearchService.cer"'
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert response.content.startswith(b"-----BEGIN CERTIFICATE-----\n")
    # The same bytes on every call while nothing changed (Terraform hashes the body).
    assert _download(server, admin_token).content == response.content


def test_default_ca_is_rsa2048_cloudsearchservice_ten_years(server: CsscertServer, admin_token: str) -> None:
    cert = x509.load_pem_x509_certificates(_download(server, admin_token).content)[0]
    _assert_ca_extensions(cert)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert cert.subject.rfc4514_string() == "CN=CloudSearchService"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3650, hours=1)
    shown = server.cli_json("ca", "show")
    assert shown["subject"] == "CN=CloudSearchService"
    assert shown["ca_scope"] == "region" and shown["scope"] == "region"
    assert dt.datetime.fromisoformat(shown["not_after"]) == cert.not_valid_after_utc
    assert dt.datetime.fromisoformat(shown["not_before"]) == cert.not_valid_before_utc
    assert int(shown["serial"], 16) == cert.serial_number


def test_ca_key_type_subject_and_validity_come_from_global_options(make_server: ServerFactory) -> None:
    subject = "CN=Example Search Root,O=Example Corp,C=DE"
    private = make_server(
        extra_args=["--ca-key-type", "p256", "--ca-subject", subject, "--ca-validity-days", "400"]
    )
    cert = x509.load_pem_x509_certificates(_download(private, private.token()).content)[0]
    _assert_ca_extensions(cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Example Search Root"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=400) <= lifetime <= dt.timedelta(days=400, hours=1)
    shown = private.cli_json("ca", "show")
    assert shown["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert x509.Name.from_rfc4514_string(shown["subject"]) == cert.subject


def test_ca_key_type_rsa3072_gives_a_3072_bit_rsa_ca(make_server: ServerFactory) -> None:
    private = make_server(extra_args=["--ca-key-type", "rsa3072"])
    cert = x509.load_pem_x509_certificates(_download(private, private.token()).content)[0]
    _assert_ca_extensions(cert)
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072


def test_a_bad_ca_subject_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    fresh = CsscertServer(data_dir=tmp_path / "data")
    result = fresh.cli("--ca-subject", "not a name", "serve", "--port", str(fresh.port), check=False)
    assert result.returncode == EXIT_ERROR
    assert "RFC 4514" in result.stderr and "Traceback" not in result.stderr
    assert not fresh.data_dir.exists()
