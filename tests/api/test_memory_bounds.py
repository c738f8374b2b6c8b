"""Nothing a caller sends makes the server keep memory: error messages quote at most 64
characters of caller text, and every cache is keyed and bounded so that unique, huge values pass
through without being kept.

The finding this reproduces: 1,100 requests with a current X-Sdk-Date and a unique 200 KB name in
``SignedHeaders`` took a worker from 62 to 655 MiB, for good. Here 2,000 requests of each kind
(unique huge ``SignedHeaders``, ``Accept`` and ``format`` values) leave the worker's RSS within
10 % of where it started.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import httpx
import pytest
from support.server import CsscertServer, ServerFactory

REQUESTS = 2000
HUGE = 24 * 1024  # characters: under the server's header limit (32 KiB), far over any cache key


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _worker_pid(server: CsscertServer) -> int:
    assert server.proc is not None
    workers = [
        pid
        for pid in _children(server.proc.pid)
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 1, workers
    return workers[0]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def lone(make_server: ServerFactory) -> CsscertServer:
    # One credential drives thousands of requests here: its limit is not what is tested.
    return make_server(env={"CSSCERT_RATE_LIMIT_CREDENTIAL": "100000/1"})


def _unique_name() -> str:
    return "x-" + secrets.token_hex(8) + "a" * HUGE


def _send_all(server: CsscertServer, token: str, count: int) -> None:
    url = server.download_url()
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            signed = ";".join(sorted(["host", "x-sdk-date", _unique_name()]))
            access = f"AK{secrets.token_hex(4)}"
            authorization = f"SDK-HMAC-SHA256 Access={access}, SignedHeaders={signed}, Signature={'0' * 64}"
            response = client.get(url, headers={"Authorization": authorization, "X-Sdk-Date": date})
            assert response.status_code == 401, response.text[:300]
            assert len(response.json()["error_msg"]) < 300
            response = client.get(url, headers={"X-Auth-Token": token, "Accept": "x/" + _unique_name()})
            assert response.status_code == 406, response.text[:300]
            response = client.get(url, params={"format": _unique_name()}, headers={"X-Auth-Token": token})
            assert response.status_code == 400, response.text[:300]
            assert len(response.json()["error_msg"]) < 300


def test_unique_huge_signed_headers_accept_and_format_values_leave_no_memory_behind(
    lone: CsscertServer,
) -> None:
    token = lone.token()
    worker = _worker_pid(lone)
    _send_all(lone, token, 200)  # warm: allocator arenas, connection buffers, code paths
    before = _rss_kib(worker)
    _send_all(lone, token, REQUESTS)
    after = _rss_kib(worker)
    assert after <= before * 1.10, f"worker RSS {before} -> {after} KiB after {3 * REQUESTS} requests"
    assert os.path.exists(f"/proc/{worker}"), "the worker must have survived"
