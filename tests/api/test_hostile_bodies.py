"""Hostile request bodies get a clear 4xx in the route's own error shape, never a 500 or a
worker that balloons: bodies are counted while they stream, not buffered first."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from support.server import CsscertServer

_MIB = 1024 * 1024


def _chunked(total_mib: int) -> Iterator[bytes]:
    chunk = b"x" * _MIB
    for _ in range(total_mib):
        yield chunk


def _worker_peak_rss_kib(server: CsscertServer) -> int:
    assert server.proc is not None
    peaks = []
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as handle:
        children = [int(pid) for pid in handle.read().split()]
    for pid in children:
        with open(f"/proc/{pid}/status") as status:
            peaks += [int(line.split()[1]) for line in status if line.startswith("VmHWM:")]
    return max(peaks)


def test_oversized_chunked_bodies_are_refused_while_streaming(
    server: CsscertServer, admin_token: str
) -> None:
    response = httpx.post(f"{server.url}/v3/auth/tokens", content=_chunked(256), timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413
    download = httpx.request(
        "GET", server.download_url(), headers={"X-Auth-Token": admin_token}, content=_chunked(64), timeout=60
    )
    assert download.status_code == 400 and download.json()["error_code"] == "CSS.0001"
    assert "x-request-id" in download.headers
    assert _worker_peak_rss_kib(server) < 200 * 1024  # 256 MiB went by without being kept


def test_deeply_nested_json_and_unencodable_passwords_are_bad_requests(server: CsscertServer) -> None:
    nested = httpx.post(f"{server.url}/v3/auth/tokens", content=b"[" * 50_000)
    assert nested.status_code == 400 and nested.json()["error"]["code"] == 400
    domain = server.bootstrap["domain_name"]
    body = (
        '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"csscert-admin",'
        '"domain":{"name":"' + domain + '"},"password":"\\u0000\\ud800"}}}}}'
    )
    surrogate = httpx.post(f"{server.url}/v3/auth/tokens", content=body.encode())
    assert surrogate.status_code == 400, surrogate.text
    assert "Unicode" in surrogate.json()["error"]["message"]
