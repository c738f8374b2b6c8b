"""The recommended deployment works as documented: docs/deploy/nginx-csscert.conf, run by Debian's
nginx with only its CHANGE values replaced, in front of a real csscert (TLS by a node certificate
csscert itself issued)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.accounts import new_account
from support.server import CsscertServer, ServerFactory, free_port
from support.signing import sdk_sign

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx-csscert.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Proxy:
    url: str
    port: int
    ca_file: Path


def _configure(example: str, upstream_port: int, port: int, cert: Path, key: Path) -> str:
    replaced = (
        example.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
        .replace("/etc/csscert/tls/css.crt", str(cert))
        .replace("/etc/csscert/tls/css.key", str(key))
    )
    assert replaced.count(str(upstream_port)) == 1 and str(cert) in replaced
    return replaced


@pytest.fixture(scope="module")
def proxied(make_server: ServerFactory) -> CsscertServer:
    return make_server(env={"CSSCERT_TRUSTED_PROXIES": "127.0.0.1"})


@pytest.fixture(scope="module")
def proxy(proxied: CsscertServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    work = tmp_path_factory.mktemp("nginx")
    tls = work / "tls"
    proxied.cli("cert", "issue", "--project", proxied.project_id, "--name", "proxy", "--dns", "localhost",
                "--ip", "127.0.0.1", "--out", str(tls))  # fmt: skip
    port = free_port()
    site = _configure(EXAMPLE.read_text(), proxied.port, port, tls / "proxy.crt", tls / "proxy.key")
    (work / "csscert.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {work}/csscert.conf;\n}}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(work), "-c", str(work / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode() if process.stderr else "nginx exited")
            time.sleep(0.05)
    try:
        yield Proxy(f"https://localhost:{port}", port, tls / "ca.crt")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _client(proxy: Proxy) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(proxy.ca_file)), timeout=10)


def _error_matches_its_request_id(response: httpx.Response, code: str) -> None:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error_code"] == body["errCode"] == code
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert response.headers["x-request-id"] == body["request_id"]


def test_downloads_through_nginx_with_a_token_and_with_the_sdk_signer(
    proxied: CsscertServer, proxy: Proxy
) -> None:
    token = proxied.token()
    account = new_account(proxied, prefix="behind")
    with _client(proxy) as client:
        direct = httpx.get(proxied.download_url(), headers={"X-Auth-Token": token})
        through = client.get(
            f"{proxy.url}/v1.0/{proxied.project_id}/cer/download", headers={"X-Auth-Token": token}
        )
        assert through.status_code == 200 and through.content == direct.content
        url, headers = sdk_sign(
            account.access, account.secret, "GET", f"{proxy.url}/v1.0/{account.project_id}/cer/download"
        )
        signed = client.get(url, headers=headers)
        assert signed.status_code == 200, signed.text
    # csscert used the request id nginx made, and logged the caller's forwarded address.
    request_id = through.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    log = proxied.data_dir.parent / f"server-{proxied.port}.log"
    deadline = time.monotonic() + 5
    while request_id not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    entry = next(json.loads(line) for line in log.read_text().splitlines() if request_id in line)
    assert entry["route"] == "download" and entry["client"] == "127.0.0.1"


def test_errors_nginx_answers_itself_have_csscerts_shape_and_a_request_id(proxy: Proxy) -> None:
    with _client(proxy) as client:
        huge = client.get(f"{proxy.url}/healthz", headers={"X-Big": "a" * 20000})
        assert huge.status_code == 400
        _error_matches_its_request_id(huge, "CSS.0001")
        metrics = client.get(f"{proxy.url}/metrics")
        assert metrics.status_code == 403
        _error_matches_its_request_id(metrics, "CSS.0015")
        too_long = client.post(f"{proxy.url}/v3/auth/tokens", content=b"{" * 70000)
        assert too_long.status_code == 400
        _error_matches_its_request_id(too_long, "CSS.0001")


def test_a_slow_client_is_cut_off_by_nginx(proxy: Proxy) -> None:
    context = ssl.create_default_context(cafile=str(proxy.ca_file))
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=20)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        started = time.monotonic()
        reply = sock.recv(4096)
        assert time.monotonic() - started < 15
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply[:100]
