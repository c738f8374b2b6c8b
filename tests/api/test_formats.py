"""Download formats, content negotiation, revalidation and format errors, against the shared server.

Everything here only reads the shared server's trust bundle (it adds a node certificate, a
project and a user, which other tests do not look at).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
import subprocess
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from support.http import assert_css_error, download
from support.server import CsscertServer
from support.tls import (
    NODE_BODY,
    TLSListener,
    curl,
    fingerprint,
    issue_node,
    listening,
    pem_fingerprints,
    python_ssl_connect,
    s_client,
    strong_etag,
)

from csscert import signing
from csscert.sealing import Sealer, load_master_key
from csscert.settings import Settings
from csscert.store import open_store

FORMATS = ["pem", "der", "p7b", "jks", "p12", "json"]


@pytest.fixture(scope="module")
def node_listener(server: CsscertServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSListener]:
    node = issue_node(server, tmp_path_factory.mktemp("node"), "formats-node")
    with listening(node.cert, node.key) as listener:
        yield listener


@pytest.fixture(scope="module")
def pem_file(server: CsscertServer, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    response = download(server, admin_token)
    assert response.status_code == 200, response.text
    path = tmp_path_factory.mktemp("dl") / "CloudSearchService.cer"
    path.write_bytes(response.content)
    return path


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CA that never signed anything of ours (same subject, to make it a fair test)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name.from_rfc4514_string("CN=CloudSearchService")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("foreign") / "foreign.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# -- the default PEM with real TLS clients ------------------------------------------------


def test_downloaded_pem_verifies_a_real_tls_server_in_every_client(
    node_listener: TLSListener, pem_file: Path
) -> None:
    result = curl(node_listener.url(), pem_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == NODE_BODY

    result = s_client(node_listener.port, pem_file)
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stderr

    assert python_ssl_connect(node_listener.port, pem_file).endswith(NODE_BODY)

    context = ssl.create_default_context(cafile=str(pem_file))
    for host in ("localhost", "127.0.0.1"):
        response = httpx.get(node_listener.url(host), verify=context)
        assert response.status_code == 200 and response.content == NODE_BODY


def test_a_different_ca_is_rejected_by_every_client(node_listener: TLSListener, foreign_ca: Path) -> None:
    result = curl(node_listener.url(), foreign_ca)
    assert result.returncode == 60, (result.returncode, result.stderr)

    result = s_client(node_listener.port, foreign_ca)
    assert result.returncode == 1, result.stdout + result.stderr  # openssl: verification failed
    assert "verify error" in result.stderr.lower()

    with pytest.raises(ssl.SSLCertVerificationError):
        python_ssl_connect(node_listener.port, foreign_ca)

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(node_listener.url(), verify=ssl.create_default_context(cafile=str(foreign_ca)))


def test_default_answer_is_unchanged(server: CsscertServer, admin_token: str) -> None:
    active = server.cli_json("ca", "show")["fingerprint_sha256"]
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "*/*", "Content-Type": "application/json"}):
        response = download(server, admin_token, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == 'attachment; filename="CloudSearchService.cer"'
        assert pem_fingerprints(response.content)[0] == active
        assert "warning" not in response.headers  # a ten-year CA is far from expiry


# -- the other formats --------------------------------------------------------------------


def test_der_is_the_active_ca_and_openssl_reads_it(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    active = server.cli_json("ca", "show")["fingerprint_sha256"]
    for response in (
        download(server, admin_token, format="der"),
        download(server, admin_token, headers={"Accept": "application/pkix-cert"}),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pkix-cert"
        path = tmp_path / "ca.der"
        path.write_bytes(response.content)
        out = subprocess.run(
            [
                "openssl",
                "x509",
                "-inform",
                "der",
                "-in",
                str(path),
                "-noout",
                "-fingerprint",
                "-sha256",
                "-subject",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.split("=", 1)[1].splitlines()[0].replace(":", "").lower() == active
        assert "CloudSearchService" in out


def test_p7b_is_every_trusted_ca_and_openssl_reads_it(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    pem = download(server, admin_token).content
    response = download(server, admin_token, format="p7b")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert response.headers["content-disposition"] == 'attachment; filename="CloudSearchService.p7b"'
    path = tmp_path / "ca.p7b"
    path.write_bytes(response.content)
    printed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", str(path), "-print_certs"],
        capture_output=True,
        check=True,
    ).stdout
    # PKCS#7 holds its certificates in a SET OF, so DER fixes their order, not the bundle
    assert sorted(pem_fingerprints(printed)) == sorted(pem_fingerprints(pem))
    parsed = pkcs7.load_der_pkcs7_certificates(response.content)
    assert sorted(fingerprint(c) for c in parsed) == sorted(pem_fingerprints(pem))
    by_accept = download(server, admin_token, headers={"Accept": "application/pkcs7-mime"})
    assert by_accept.content == response.content


def test_json_metadata_is_what_pinning_clients_need(server: CsscertServer, admin_token: str) -> None:
    response = download(server, admin_token, format="json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    listed = json.loads(response.content)["certificates"]
    certs = x509.load_pem_x509_certificates(download(server, admin_token).content)
    shown = {ca["fingerprint_sha256"]: ca for ca in server.cli_json("ca", "list")}
    assert len(listed) == len(certs) >= 1
    for item, cert in zip(listed, certs, strict=True):
        assert item["subject"] == cert.subject.rfc4514_string()
        assert item["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
        assert item["fingerprint_sha1"] == cert.fingerprint(hashes.SHA1()).hex()
        assert int(item["serial"], 16) == cert.serial_number
        assert dt.datetime.fromisoformat(item["not_before"]) == cert.not_valid_before_utc
        assert dt.datetime.fromisoformat(item["not_after"]) == cert.not_valid_after_utc
        assert item["state"] == shown[item["fingerprint_sha256"]]["state"]
    assert listed[0]["state"] == "active"
    assert download(server, admin_token, headers={"Accept": "application/json"}).content == response.content


def test_truststore_formats_hold_every_ca_and_no_key(server: CsscertServer, admin_token: str) -> None:
    expected = pem_fingerprints(download(server, admin_token).content)
    for params, password in (
        ({"format": "p12"}, "changeit"),
        ({"format": "jks"}, "changeit"),
        ({"format": "p12", "password": "An0ther-pass word"}, "An0ther-pass word"),
    ):
        response = download(server, admin_token, query=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-pkcs12"
        assert response.headers["content-disposition"] == 'attachment; filename="truststore.p12"'
        store = pkcs12.load_pkcs12(response.content, password.encode())
        assert store.key is None and store.cert is None
        assert [fingerprint(entry.certificate) for entry in store.additional_certs] == expected
        with pytest.raises(ValueError):
            pkcs12.load_pkcs12(response.content, b"not-the-password")
    # jks and p12 are the same PKCS#12 truststore (Java reads it under either name)
    jks = download(server, admin_token, format="jks").content
    assert jks == download(server, admin_token, format="p12").content
    by_accept = download(server, admin_token, headers={"Accept": "application/x-java-keystore"})
    assert by_accept.content == jks


# -- errors -------------------------------------------------------------------------------


def _css_error(response: httpx.Response, status: int) -> str:
    """The message of a CSS.0001 error of ``status`` (400 or 406) in the exact wire shape."""
    return str(assert_css_error(response, status, "CSS.0001")["error_msg"])


def test_bad_format_value_is_400_listing_the_supported_ones(server: CsscertServer, admin_token: str) -> None:
    for value in ("pfx", "", "PEM2", "jks;pem", "%00"):
        message = _css_error(download(server, admin_token, format=value), 400)
        for name in FORMATS:
            assert name in message
    twice = httpx.get(f"{server.download_url()}?format=pem&format=der", headers={"X-Auth-Token": admin_token})
    message = _css_error(twice, 400)
    assert "once" in message
    assert download(server, admin_token, format="PEM").status_code == 200  # names are case-insensitive


def test_unsupported_accept_is_406_listing_the_supported_ones(
    server: CsscertServer, admin_token: str
) -> None:
    for accept in ("text/html", "application/xml", "image/*", "application/json;q=0", "*/*;q=0"):
        message = _css_error(download(server, admin_token, headers={"Accept": accept}), 406)
        for media in (
            "application/octet-stream",
            "application/pkix-cert",
            "application/pkcs7-mime",
            "application/x-pkcs12",
            "application/json",
        ):
            assert media in message
    # a supported type anywhere in the list wins; the format parameter beats Accept
    ok = download(server, admin_token, headers={"Accept": "text/html, application/json;q=0.5"})
    assert ok.headers["content-type"] == "application/json"
    ok = download(server, admin_token, headers={"Accept": "text/html"}, format="pem")
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/octet-stream"
    ok = download(server, admin_token, headers={"Accept": "application/json;q=0.2, application/pkix-cert"})
    assert ok.headers["content-type"] == "application/pkix-cert"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json;q=nan, */*;q=0.5", "application/octet-stream"),
        ("application/json;q=2, */*;q=0.5", "application/octet-stream"),
        ("application/json;q=0.4, */*;q=0.5", "application/octet-stream"),
        ("application/json;q=1.000, */*;q=0.5", "application/json"),
        ("text/*", "application/octet-stream"),
    ],
)
def test_accept_quality_values_follow_rfc_9110(
    server: CsscertServer, admin_token: str, accept: str, content_type: str
) -> None:
    response = download(server, admin_token, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type


def test_truststore_password_rules_hold_over_http(server: CsscertServer, admin_token: str) -> None:
    assert "only applies" in _css_error(download(server, admin_token, password="secret1"), 400)
    assert "only applies" in _css_error(download(server, admin_token, format="der", password="secret1"), 400)
    for bad in ("", "x" * 129, "pässword", "tab\there"):
        assert "password" in _css_error(download(server, admin_token, format="p12", password=bad), 400)
    assert download(server, admin_token, format="jks", password="x" * 128).status_code == 200


def test_every_format_needs_the_same_authentication(server: CsscertServer, admin_token: str) -> None:
    other = server.cli_json("project", "create", "formats_other")["id"]
    server.cli("user", "create", "formats-outsider", "--project", other)
    outsider = server.token("formats-outsider", other)
    creds = server.bootstrap
    for fmt in FORMATS:
        params = {"format": fmt}
        anonymous = httpx.get(server.download_url(), params=params)
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "APIGW.0301"
        wrong = download(server, admin_token[:-4] + "AAAA", format=fmt)
        assert wrong.status_code == 401 and wrong.json()["error_code"] == "APIGW.0301"
        denied = download(server, outsider, format=fmt)
        assert denied.status_code == 403 and denied.json()["error_code"] == "CSS.0015"
        assert download(server, admin_token, format=fmt).status_code == 200
        # AK/SK with the format in the signed query string
        url = f"{server.download_url()}?format={fmt}"
        headers = signing.sign_request(
            creds["access_key"],
            creds["secret_key"],
            "GET",
            url,
            {"Content-Type": "application/json", "X-Project-Id": server.project_id},
        )
        assert httpx.get(url, headers=headers).status_code == 200
        tampered = httpx.get(f"{server.download_url()}?format=json", headers=headers)
        assert fmt == "json" or tampered.status_code == 401
    # a bad format is not even looked at before authentication
    assert httpx.get(server.download_url(), params={"format": "bogus"}).status_code == 401
    assert httpx.get(server.download_url(), headers={"Accept": "text/html"}).status_code == 401


# -- no key material in any response --------------------------------------------------------


def _ca_private_keys(server: CsscertServer) -> list[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """Open the CA keys the way the server does (master key + sealed record), to grep for them."""
    settings = Settings(data_dir=server.data_dir)
    sealer = Sealer(load_master_key(None, server.data_dir, create=False))
    store = open_store(settings)
    try:
        keys = []
        for ca in store.authorities():
            key = serialization.load_der_private_key(sealer.open(ca.key_sealed, f"ca:{ca.id}"), None)
            assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
            keys.append(key)
        return keys
    finally:
        store.close()


def _secret_fragments(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> list[bytes]:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        secrets = [numbers.d, numbers.p, numbers.q]
    else:
        secrets = [key.private_numbers().private_value]
    raw = [value.to_bytes((value.bit_length() + 7) // 8, "big") for value in secrets]
    return [der, *raw, *(r.hex().encode() for r in raw), *(format(v, "x").encode() for v in secrets)]


def test_no_response_of_any_format_contains_key_material(server: CsscertServer, admin_token: str) -> None:
    fragments = [fragment for key in _ca_private_keys(server) for fragment in _secret_fragments(key)]
    assert fragments
    requests: list[dict[str, str]] = [{"format": fmt} for fmt in FORMATS]
    requests += [{"format": "p12", "password": "s3cret-pass"}, {}]
    for params in requests:
        for method in ("GET", "HEAD"):
            response = download(server, admin_token, method=method, query=params)
            assert response.status_code == 200
            blob = response.content + json.dumps(dict(response.headers)).encode()
            assert b"PRIVATE KEY" not in blob and b"PRIVATE" not in blob.upper().replace(b"PRIVATE_", b"")
            for fragment in fragments:
                assert fragment not in blob, params
    for fmt in ("p12", "jks"):
        store = pkcs12.load_pkcs12(download(server, admin_token, format=fmt).content, b"changeit")
        assert store.key is None


# -- revalidation ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_validators_and_conditional_requests(server: CsscertServer, admin_token: str, fmt: str) -> None:
    first = download(server, admin_token, format=fmt)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == strong_etag(first.content)  # strong: the hash of exactly these bytes
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["vary"] == "Accept"
    last_modified = first.headers["last-modified"]
    modified = parsedate_to_datetime(last_modified)
    assert modified <= dt.datetime.now(dt.UTC)
    assert int(first.headers["content-length"]) == len(first.content)

    again = download(server, admin_token, format=fmt)
    assert again.content == first.content and again.headers["etag"] == etag

    def conditional(**headers: str) -> httpx.Response:
        return download(server, admin_token, format=fmt, headers=headers)

    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},
        {"If-None-Match": f'"0000", {etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": last_modified},
        {
            "If-Modified-Since": format_datetime(  # later than Last-Modified (but not in the future)
                min(modified + dt.timedelta(seconds=1), dt.datetime.now(dt.UTC)), usegmt=True
            )
        },
        {"If-Modified-Since": last_modified.replace("GMT", "-0000")},
    ):
        response = conditional(**headers)
        assert response.status_code == 304, headers
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["last-modified"] == last_modified
        assert response.headers["cache-control"] == "no-cache"
        assert "content-type" not in response.headers
        assert response.headers["x-request-id"]

    for headers in (
        {"If-None-Match": '"something-else"'},
        {"If-None-Match": etag.strip('"')},  # unquoted is not the same tag
        {"If-None-Match": '"x"', "If-Modified-Since": last_modified},  # If-None-Match wins
        {"If-Modified-Since": format_datetime(modified - dt.timedelta(seconds=1), usegmt=True)},
        {"If-Modified-Since": "yesterday"},
        {"If-Modified-Since": format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=1), usegmt=True)},
    ):
        response = conditional(**headers)
        assert response.status_code == 200, headers
        assert response.content == first.content

    head = download(server, admin_token, format=fmt, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "last-modified", "cache-control", "content-type", "content-length", "vary"):
        assert head.headers.get(name) == first.headers.get(name), name
    assert head.headers.get("content-disposition") == first.headers.get("content-disposition")
    head_304 = download(server, admin_token, format=fmt, method="HEAD", headers={"If-None-Match": etag})
    assert head_304.status_code == 304 and head_304.content == b""


def test_representations_have_distinct_etags(server: CsscertServer, admin_token: str) -> None:
    formats = ("pem", "der", "p7b", "p12", "json")
    tags = {fmt: download(server, admin_token, format=fmt).headers["etag"] for fmt in formats}
    assert len(set(tags.values())) == len(tags)
    custom = download(server, admin_token, format="p12", password="other-pass")
    assert custom.headers["etag"] not in tags.values()
    # the ETag of one representation does not validate another
    pem_tag = {"If-None-Match": tags["pem"]}
    assert download(server, admin_token, format="der", headers=pem_tag).status_code == 200
    assert hashlib.sha256(custom.content).hexdigest() in custom.headers["etag"]
