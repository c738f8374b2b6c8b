"""csscert's own port over TLS: the official SDK, otcextensions (openstacksdk) and curl verify it
with CloudSearchService.cer, the very file they download; the certificate follows the CA."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openstack
import pytest
from cryptography import x509
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcss.v1 import CssClient, DownloadCertRequest
from otcextensions import sdk as otc_sdk
from support.server import free_port

from csscert.testing import CsscertEndpoint, start_server

pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for InfluxDB"),
    pytest.mark.filterwarnings("ignore:The 'service_type' parameter"),
]
PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}


@pytest.fixture(scope="module")
def tls_server() -> Iterator[CsscertEndpoint]:
    server = start_server(tls=True)
    yield server
    server.stop()


def test_curl_verifies_csscert_with_the_downloaded_ca_file(
    tls_server: CsscertEndpoint, tmp_path: Path
) -> None:
    assert tls_server.endpoint.startswith("https://127.0.0.1:")
    out = tmp_path / "CloudSearchService.cer"
    curl = [
        "curl",
        "-fsS",
        "--cacert",
        str(tls_server.ca_file),
        "-H",
        f"X-Auth-Token: {tls_server.token}",
        "-o",
        str(out),
        tls_server.download_url,
    ]
    subprocess.run(curl, check=True, timeout=30)
    assert out.read_bytes() == tls_server.ca_file.read_bytes()
    unverified = subprocess.run(["curl", "-fsS", tls_server.download_url], capture_output=True, text=True)
    assert unverified.returncode == 60  # curl: the peer's certificate cannot be verified without our CA


def test_the_official_sdk_over_tls(tls_server: CsscertEndpoint) -> None:
    config = HttpConfig.get_default_config()
    config.ssl_ca_cert = str(tls_server.ca_file)
    client = (
        CssClient.new_builder()
        .with_http_config(config)
        .with_credentials(
            BasicCredentials(tls_server.access_key, tls_server.secret_key, tls_server.project_id)
        )
        .with_endpoint(tls_server.endpoint)
        .build()
    )
    assert client.download_cert(DownloadCertRequest()).raw_content == tls_server.ca_file.read_bytes()


def test_otcextensions_over_tls_with_cacert(
    tls_server: CsscertEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = openstack.connect(
        auth_url=tls_server.iam_endpoint,
        username=tls_server.user_name,
        password=tls_server.password,
        project_name=tls_server.project_name,
        user_domain_name=tls_server.domain_name,
        project_domain_name=tls_server.domain_name,
        region_name=tls_server.region,
        cacert=str(tls_server.ca_file),
        load_yaml_config=False,
        load_envvars=False,
    )
    otc_sdk.register_otc_extensions(conn)
    conn.css.download_certificate()  # type: ignore[attr-defined]
    assert (tmp_path / "CloudSearchService.cer").read_bytes() == tls_server.ca_file.read_bytes()
    endpoint = conn.css.get_endpoint()  # type: ignore[attr-defined]
    assert endpoint == f"{tls_server.endpoint}/v1.0/{tls_server.project_id}"  # the https catalog


class Served:
    """`csscert serve` on a data directory, with TLS options."""

    def __init__(self, data: Path, *args: str) -> None:
        self.data, self.port = data, free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csscert",
                "--data-dir",
                str(data),
                "serve",
                "--port",
                str(self.port),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=PLAIN_ENV,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.certificate = x509.load_pem_x509_certificate(
                    ssl.get_server_certificate(("127.0.0.1", self.port), timeout=2).encode()
                )
                break
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
                assert time.monotonic() < deadline, "csscert serve did not answer over TLS"
                time.sleep(0.1)

    def get(self, cafile: Path) -> httpx.Response:
        """A verified request: the chain must lead to ``cafile`` and name 127.0.0.1."""
        return httpx.get(
            f"https://127.0.0.1:{self.port}/healthz", verify=ssl.create_default_context(cafile=str(cafile))
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _csscert(data: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "csscert", "--data-dir", str(data), *args],
        check=True,
        capture_output=True,
        text=True,
        env=PLAIN_ENV,
        timeout=120,
    ).stdout


def test_own_certificate_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _csscert(data, "init")
    api = tmp_path / "api"
    _csscert(
        data, "cert", "issue", "--name", "api", "--dns", "localhost", "--ip", "127.0.0.1", "--out", str(api)
    )
    served = Served(data, "--tls-cert", str(api / "api.crt"), "--tls-key", str(api / "api.key"))
    try:
        assert served.get(api / "ca.crt").status_code == 200
        assert served.certificate == x509.load_pem_x509_certificates((api / "api.crt").read_bytes())[0]
    finally:
        served.stop()
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "csscert",
            "--data-dir",
            str(data),
            "serve",
            "--port",
            str(free_port()),
            "--tls-cert",
            str(api / "api.crt"),
            "--tls-key",
            str(api / "ca.crt"),
        ],
        capture_output=True,
        text=True,
        env=PLAIN_ENV,
        timeout=60,
    )
    assert wrong.returncode == 1 and "not a PEM certificate and its key" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_the_server_certificate_follows_the_ca_through_rotation_and_retirement(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _csscert(data, "init")
    ca_file = tmp_path / "CloudSearchService.cer"
    first = Served(data, "--tls")
    try:
        ca_file.write_bytes(_download(first, None))
        assert first.get(ca_file).status_code == 200
    finally:
        first.stop()
    old_ca = json.loads(_csscert(data, "ca", "show", "--json"))["fingerprint_sha256"]
    _csscert(data, "ca", "rotate")
    overlap = Served(data, "--tls")  # the old CA is still trusted: clients with the old file get in
    try:
        assert overlap.certificate == first.certificate
        ca_file.write_bytes(_download(overlap, ca_file))  # ...and fetch the bundle with both CAs
    finally:
        overlap.stop()
    _csscert(data, "ca", "retire", old_ca, "--force")
    renewed = Served(data, "--tls")
    try:
        assert renewed.certificate.serial_number != first.certificate.serial_number
        assert renewed.get(ca_file).status_code == 200  # the bundle fetched during the overlap verifies it
    finally:
        renewed.stop()
    rows = [
        row
        for row in json.loads(_csscert(data, "cert", "list", "--all", "--json"))
        if row["name"] == "csscert-server"
    ]
    assert [row["status"] for row in rows] == ["superseded", "valid"]
    assert rows[0]["ca_fingerprint_sha256"] == old_ca != rows[1]["ca_fingerprint_sha256"]


def _download(served: Served, cafile: Path | None) -> bytes:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(cafile)) if cafile else False
    response = httpx.get(
        f"https://127.0.0.1:{served.port}/v1.0/{_project(served.data)}/cer/download",
        headers={"X-Auth-Token": _token(served.data)},
        verify=verify,
    )
    assert response.status_code == 200, response.text
    return response.content


def _project(data: Path) -> str:
    return str(json.loads((data / "bootstrap-credentials.json").read_text())["project_id"])


def _token(data: Path) -> str:
    return _csscert(data, "token", "issue", "--user", "csscert-admin", "--project", _project(data)).strip()
