"""`csscert download` through the real API and `csscert verify` against real TLS listeners."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.http import download
from support.server import EXIT_ERROR, CsscertServer, free_port, run_csscert
from support.tls import TLSListener, issue_node, listening, pem_fingerprints


def csscert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, without a data directory (client commands need none)."""
    return run_csscert(*args, cwd=cwd)


def _colon(fp: str) -> str:
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


@pytest.fixture(scope="module")
def listeners(
    server: CsscertServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, TLSListener]]:
    good = issue_node(server, tmp_path_factory.mktemp("good"), "client-good")
    misnamed = issue_node(
        server, tmp_path_factory.mktemp("misnamed"), "client-misnamed", dns=("node.other.example",), ips=()
    )
    with listening(good.cert, good.key) as good_tls, listening(misnamed.cert, misnamed.key) as misnamed_tls:
        yield {"good": good_tls, "misnamed": misnamed_tls}


@pytest.fixture(scope="module")
def bundle(server: CsscertServer, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "CloudSearchService.cer"
    path.write_bytes(download(server, admin_token).content)
    return path


# -- download ------------------------------------------------------------------------------


def test_download_with_a_token_writes_the_file_and_prints_the_fingerprint(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    expected = download(server, admin_token).content
    fingerprints = pem_fingerprints(expected)
    common = ["download", "--endpoint", server.url, "--project", server.project_id, "--token", admin_token]

    result = csscert(*common, cwd=tmp_path)  # no -o: the name from Content-Disposition
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "CloudSearchService.cer").read_bytes() == expected
    for fp in fingerprints:
        assert f"SHA-256 {_colon(fp)}" in result.stdout

    target = tmp_path / "mine.pem"
    target.write_bytes(b"keep me")
    refused = csscert(*common, "-o", str(target), cwd=tmp_path)
    assert refused.returncode == EXIT_ERROR and "exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_bytes() == b"keep me"
    refused = csscert(*common, cwd=tmp_path)  # the default name exists now, too
    assert refused.returncode == EXIT_ERROR and "--force" in refused.stderr
    forced = csscert(*common, "-o", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_download_with_ak_sk_in_every_format(server: CsscertServer, admin_token: str, tmp_path: Path) -> None:
    creds = server.bootstrap
    fingerprints = pem_fingerprints(download(server, admin_token).content)
    common = [
        "download",
        "--endpoint",
        server.url + "/",
        "--project",
        server.project_id,
        "--ak",
        creds["access_key"],
        "--sk",
        creds["secret_key"],
    ]
    for fmt, extra, expected in (
        ("pem", [], fingerprints),
        ("der", [], fingerprints[:1]),
        ("p7b", [], fingerprints),
        ("p12", ["--password", "cli-Pass-1"], fingerprints),
        ("jks", [], fingerprints),
        ("json", [], fingerprints),
    ):
        target = tmp_path / f"out.{fmt}"
        result = csscert(*common, "--format", fmt, *extra, "-o", str(target), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        params = {"format": fmt, **({"password": extra[1]} if extra else {})}
        assert target.read_bytes() == download(server, admin_token, query=params).content
        printed = [line.split("SHA-256 ", 1)[1] for line in result.stdout.splitlines() if "SHA-256 " in line]
        assert printed == [_colon(fp) for fp in expected], (fmt, result.stdout)
    default_name = csscert(*common, "--format", "p12", cwd=tmp_path)
    assert default_name.returncode == 0 and (tmp_path / "truststore.p12").exists()


def test_download_failures_are_clear(server: CsscertServer, admin_token: str, tmp_path: Path) -> None:
    creds = server.bootstrap
    project = ["--project", server.project_id]
    cases = [
        (["--endpoint", server.url, *project, "--token", "not-a-token"], "HTTP 401 APIGW.0301"),
        (["--endpoint", server.url, *project, "--ak", creds["access_key"], "--sk", "x" * 40], "HTTP 401"),
        (["--endpoint", server.url, "--project", "0" * 32, "--token", admin_token], "HTTP 404 CSS.0016"),
        (
            ["--endpoint", f"http://127.0.0.1:{free_port()}", *project, "--token", admin_token],
            "Connection refused",
        ),
        (["--endpoint", "ftp://example.com", *project, "--token", admin_token], "http:// or https://"),
        (["--endpoint", server.url, *project], "give --token"),
        (
            [
                "--endpoint",
                server.url,
                *project,
                "--token",
                admin_token,
                "--format",
                "p12",
                "--password",
                "ü",
            ],
            "printable ASCII",
        ),
    ]
    for args, message in cases:
        result = csscert("download", *args, "-o", str(tmp_path / "x"), cwd=tmp_path)
        assert result.returncode == EXIT_ERROR, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_csscert_download_of_json_metadata_is_not_named_like_a_certificate(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    result = csscert(
        "download", "--endpoint", server.url, "--project", server.project_id, "--token", admin_token,
        "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["CloudSearchService.json"]


# -- verify --------------------------------------------------------------------------------


def _verify(url: str, cafile: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return csscert("verify", url, "--cafile", str(cafile), *extra, cwd=tmp_path)


def test_verify_ok_names_the_signing_ca(
    server: CsscertServer, admin_token: str, listeners: dict[str, TLSListener], bundle: Path, tmp_path: Path
) -> None:
    result = _verify(listeners["good"].url(), bundle, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK localhost:")
    assert "client-good" in result.stdout
    active = server.cli_json("ca", "show")["fingerprint_sha256"]
    assert f"signed by CA {_colon(active)}" in " ".join(result.stdout.split()), result.stdout
    # any downloaded format works as the CA file: DER, PKCS#7, the default-password truststore
    for fmt in ("der", "p7b", "p12"):
        cafile = tmp_path / f"ca.{fmt}"
        cafile.write_bytes(download(server, admin_token, format=fmt).content)
        verdict = json.loads(_verify(listeners["good"].url("127.0.0.1"), cafile, tmp_path, "--json").stdout)
        assert verdict["ok"] is True and verdict["problem"] is None, verdict


def test_verify_failures_say_why(
    server: CsscertServer, listeners: dict[str, TLSListener], bundle: Path, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Some Other CA")
    now = dt.datetime.now(dt.UTC)
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    other_ca = tmp_path / "other.pem"
    other_ca.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    junk = tmp_path / "junk.pem"
    junk.write_text("this is no certificate\n")
    port = server.url.rsplit(":", 1)[1]
    cases = [
        (listeners["good"].url(), other_ca, "wrong-ca", "wrong CA"),
        (listeners["misnamed"].url(), bundle, "hostname-mismatch", "node.other.example"),
        (listeners["misnamed"].url("127.0.0.1"), bundle, "hostname-mismatch", "IP address mismatch"),
        (f"https://127.0.0.1:{free_port()}", bundle, "refused", "connection refused"),
        (f"https://127.0.0.1:{port}", bundle, "not-tls", "does not speak TLS"),
        (listeners["good"].url(), junk, "bad-cafile", "holds no certificate"),
        ("http://localhost:1", bundle, "bad-url", "https://HOST:PORT"),
    ]
    for index, (url, cafile, problem, words) in enumerate(cases):
        result = _verify(url, cafile, tmp_path, "--json")
        assert result.returncode == EXIT_ERROR, (url, result.stdout)
        verdict = json.loads(result.stdout)
        assert verdict["ok"] is False and verdict["problem"] == problem, verdict
        assert words in verdict["reason"], verdict
        if index < 2:  # what a person sees
            text = _verify(url, cafile, tmp_path)
            assert text.returncode == EXIT_ERROR and text.stdout == ""
            assert text.stderr.startswith("FAILED") and words in " ".join(text.stderr.split()), text.stderr
            assert "Traceback" not in text.stderr


def test_fingerprints_print_as_plain_hex(tmp_path: Path) -> None:
    """Colon fingerprints often contain ':AB:' or ':CD:', which rich would turn into emoji."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=localhost")
    now = dt.datetime.now(dt.UTC)
    serial = 1
    while True:  # a self-signed server certificate whose colon fingerprint has ":AB:" in it
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256())
        )
        colon = _colon(cert.fingerprint(hashes.SHA256()).hex())
        if ":AB:" in colon:
            break
        serial += 1
    cert_file = tmp_path / "self.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "self.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with listening(cert_file, key_file) as listener:
        result = _verify(listener.url(), cert_file, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"SHA-256      {colon}" in result.stdout
    assert f"signed by CA {colon}" in result.stdout
