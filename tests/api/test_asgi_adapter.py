"""The same App under ASGI (granian's ASGI interface): the adapter must answer as RSGI does.

Users who run csscert under another ASGI server get this adapter, so it is driven here through a
real ASGI server on the data directory of a real csscert, and compared with the RSGI answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from support.keystone import bootstrap_login
from support.server import CsscertServer, ServerFactory, free_port


@pytest.fixture(scope="module")
def rsgi_server(make_server: ServerFactory) -> CsscertServer:
    return make_server()


@pytest.fixture(scope="module")
def asgi_url(rsgi_server: CsscertServer) -> Iterator[str]:
    port = free_port()
    env = {**rsgi_server.process_env(), "CSSCERT_DATA_DIR": str(rsgi_server.data_dir)}
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--port",
        str(port),
        "--no-ws",
        "csscert.api.app:create_app",
    ]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the ASGI server did not start"
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_asgi_answers_like_rsgi(rsgi_server: CsscertServer, asgi_url: str) -> None:
    token = rsgi_server.token()
    path = f"/v1.0/{rsgi_server.project_id}/cer/download"
    headers = {"X-Auth-Token": token}
    native = httpx.get(rsgi_server.url + path, headers=headers)
    adapted = httpx.get(asgi_url + path, headers=headers)
    assert adapted.status_code == 200 and adapted.content == native.content
    for name in ("content-type", "content-disposition", "etag", "last-modified", "cache-control"):
        assert adapted.headers[name] == native.headers[name], name
    head = httpx.head(asgi_url + path, headers=headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(native.content))
    revalidated = httpx.get(asgi_url + path, headers={**headers, "If-None-Match": native.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""


def test_asgi_answers_errors_and_keystone_logins_like_rsgi(rsgi_server: CsscertServer, asgi_url: str) -> None:
    anonymous = httpx.get(f"{asgi_url}/v1.0/{rsgi_server.project_id}/cer/download")
    assert anonymous.status_code == 401
    body = anonymous.json()
    assert body["error_code"] == "APIGW.0301" and body["request_id"] == anonymous.headers["x-request-id"]
    bad = httpx.get(f"{asgi_url}/v1.0/%7Bproject_id%7D/cer/download")
    assert bad.status_code == 400 and bad.json()["error_code"] == "CSS.0001"
    login = httpx.post(f"{asgi_url}/v3/auth/tokens", json=bootstrap_login(rsgi_server.bootstrap))
    assert login.status_code == 201, login.text
    token = login.headers["x-subject-token"]
    download = httpx.get(rsgi_server.download_url(), headers={"X-Auth-Token": token})
    assert download.status_code == 200  # a token minted through the ASGI server works everywhere
