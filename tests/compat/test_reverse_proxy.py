"""The README's nginx example, run as written with Debian's nginx (TLS in front, Host kept):
AK/SK signatures made by the official SDK still verify, and the Keystone catalog names the
proxy's address."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcss.v1 import CssClient, DownloadCertRequest
from support.server import ServerFactory, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_server_block() -> str:
    found = re.search(r"```nginx\n(.*?)\n```", README.read_text(), re.S)
    assert found, "README.md has no nginx example"
    return found.group(1)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    yield Path(binary), free_port()


def test_the_readme_nginx_example_keeps_aksk_valid(
    make_server: ServerFactory, nginx: tuple[Path, int], tmp_path: Path
) -> None:
    binary, proxy_port = nginx
    public = f"https://localhost:{proxy_port}"
    server = make_server(serve_args=["--public-url", public])
    certs = tmp_path / "certs"
    server.cli("cert", "issue", "--name", "proxy", "--dns", "localhost", "--out", str(certs))
    block = _readme_server_block()
    for old, new in (
        ("listen 8443", f"listen 127.0.0.1:{proxy_port}"),
        ("/etc/nginx/csscert/proxy.crt", str(certs / "proxy.crt")),
        ("/etc/nginx/csscert/proxy.key", str(certs / "proxy.key")),
        ("http://127.0.0.1:8080", server.url),
    ):
        assert old in block, old
        block = block.replace(old, new)
    temp = tmp_path / "nginx"
    temp.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"user root;\nworker_processes 1;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
        "events {}\nhttp {\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + block
        + "\n}\n"
    )
    proc = subprocess.Popen([str(binary), "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(
                    f"{public}/healthz", verify=ssl.create_default_context(cafile=str(certs / "ca.crt"))
                )
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        boot = server.bootstrap
        config = HttpConfig.get_default_config()
        config.ssl_ca_cert = str(certs / "ca.crt")
        client = (
            CssClient.new_builder()
            .with_http_config(config)
            .with_credentials(BasicCredentials(boot["access_key"], boot["secret_key"], boot["project_id"]))
            .with_endpoint(public)
            .build()
        )
        pem = client.download_cert(DownloadCertRequest()).raw_content
        assert pem == (certs / "ca.crt").read_bytes()
        login = httpx.post(
            f"{public}/v3/auth/tokens",
            verify=ssl.create_default_context(cafile=str(certs / "ca.crt")),
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": boot["user_name"],
                                "password": boot["password"],
                                "domain": {"name": boot["domain_name"]},
                            }
                        },
                    },
                    "scope": {"project": {"id": boot["project_id"]}},
                }
            },
        )
        assert login.status_code == 201, login.text
        urls = {e["url"] for service in login.json()["token"]["catalog"] for e in service["endpoints"]}
        assert f"{public}/v1.0/{boot['project_id']}" in urls
    finally:
        proc.terminate()
        proc.wait(timeout=10)
