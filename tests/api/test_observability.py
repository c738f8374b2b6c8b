"""What operators see: one JSON access log line per request (with the response's request id, a
proxy's X-Request-Id when it is sane), timestamps and levels on every other line, Prometheus
metrics for the whole server (loopback only by default), and the health routes."""

from __future__ import annotations

import json
import re
import secrets
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.server import CsscertServer, ServerFactory


@pytest.fixture(scope="module")
def watched(make_server: ServerFactory) -> CsscertServer:
    return make_server(serve_args=["--workers", "2"])


def _log_path(server: CsscertServer) -> Path:
    return server.data_dir.parent / f"server-{server.port}.log"


def _access_lines(server: CsscertServer, request_ids: set[str], timeout: float = 10.0) -> dict[str, Any]:
    """The access log entries of these request ids (the log is written about once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for line in _log_path(server).read_text().splitlines():
            if line.startswith("{") and '"csscert.access"' in line:
                entry = json.loads(line)  # every access line is one JSON document
                if entry["request_id"] in request_ids:
                    found[entry["request_id"]] = entry
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_every_request_has_one_json_access_line_carrying_its_request_id(watched: CsscertServer) -> None:
    token = watched.token()
    project = watched.project_id
    with httpx.Client(timeout=10) as client:
        ok = client.get(watched.download_url(), headers={"X-Auth-Token": token})
        bad = client.get(watched.download_url(), headers={"X-Auth-Token": "not-a-token"})
        missing = client.get(f"{watched.url}/nowhere")
    answers = {r.headers["x-request-id"]: r for r in (ok, bad, missing)}
    entries = _access_lines(watched, set(answers))
    assert set(entries) == set(answers)
    good = entries[ok.headers["x-request-id"]]
    assert good["method"] == "GET" and good["route"] == "download" and good["status"] == 200
    assert good["project"] == project and good["bytes"] == len(ok.content) and good["us"] > 0
    admin = next(u for u in watched.cli_json("user", "list") if u["name"] == "csscert-admin")
    assert good["user"] == admin["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", good["credential"]), good  # the token's audit id
    assert token not in _log_path(watched).read_text()  # never the token itself
    assert good["client"] == "127.0.0.1" and good["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", good["time"])
    assert entries[bad.headers["x-request-id"]]["status"] == 401
    assert entries[missing.headers["x-request-id"]]["route"] == "not_found"


def test_aksk_callers_are_logged_by_access_key(watched: CsscertServer) -> None:
    from support.accounts import new_account
    from support.signing import sdk_sign

    account = new_account(watched, prefix="logged")
    url, headers = sdk_sign(account.access, account.secret, "GET", watched.download_url(account.project_id))
    response = httpx.get(url, headers=headers)
    assert response.status_code == 200
    entry = _access_lines(watched, {response.headers["x-request-id"]})[response.headers["x-request-id"]]
    assert entry["credential"] == account.access and entry["user"] == account.user_id


def test_a_proxys_request_id_is_kept_when_short_and_printable(watched: CsscertServer) -> None:
    given = "edge-7f3a:1/2"
    kept = httpx.get(f"{watched.url}/healthz", headers={"X-Request-Id": given})
    assert kept.headers["x-request-id"] == given
    error = httpx.get(f"{watched.url}/v1.0/nope/cer/download", headers={"X-Request-Id": given})
    assert error.headers["x-request-id"] == given and error.json()["request_id"] == given
    for unusable in (b"x" * 200, b'quote"d', b"back\\slash", b"tab\there", "é".encode()):
        answer = httpx.get(f"{watched.url}/healthz", headers={b"X-Request-Id": unusable})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]), unusable
    assert given in _access_lines(watched, {given})


def test_other_log_lines_have_a_timestamp_and_a_level(watched: CsscertServer) -> None:
    lines = [
        line for line in _log_path(watched).read_text().splitlines() if line and not line.startswith("{")
    ]
    assert lines
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ")
    assert all(stamp.match(line) for line in lines), [line for line in lines if not stamp.match(line)][:5]


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_parse_and_count_the_whole_server(watched: CsscertServer) -> None:
    token = watched.token()
    # New connections each time, so both workers answer some of them.
    for _ in range(30):
        assert httpx.get(watched.download_url(), headers={"X-Auth-Token": token}).status_code == 200
    httpx.get(watched.download_url(), headers={"X-Auth-Token": "nonsense"})
    httpx.get(watched.download_url())
    time.sleep(1.5)  # each worker moves its counts into the shared files every second
    response = httpx.get(f"{watched.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["csscert_requests"].samples
        if s.name == "csscert_requests_total"
    }
    assert requests[("download", "200")] >= 30
    buckets = [s for s in families["csscert_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert any(s.labels["route"] == "download" and s.value >= 30 for s in buckets)
    reasons = {s.labels["reason"]: s.value for s in families["csscert_authentication_failures"].samples}
    assert reasons.get("token", 0) >= 1 and reasons.get("missing", 0) >= 1
    expiry = families["csscert_ca_expiry_seconds"].samples
    assert expiry and all(300 * 86400 < s.value < 3651 * 86400 for s in expiry)
    entries = {s.labels["cache"]: s.value for s in families["csscert_cache_entries"].samples}
    assert entries.get("representations", 0) >= 1
    hits = {s.labels["cache"]: s.value for s in families["csscert_cache_hits"].samples}
    assert hits.get("representations", 0) >= 25
    assert [s.value for s in families["csscert_database_errors"].samples if s.name.endswith("_total")] == [0]
    throttled = {s.labels["limit"] for s in families["csscert_throttled_requests"].samples}
    assert throttled >= {"credential", "login_user", "login_address"}


def _feed_gauges(server: CsscertServer) -> tuple[float, float]:
    families = _families(httpx.get(f"{server.url}/metrics").text)
    (applied,) = families["csscert_changes_applied_revision"].samples
    (listener,) = families["csscert_changes_listener_up"].samples
    return applied.value, listener.value


def test_metrics_show_the_lowest_revision_every_worker_applied(watched: CsscertServer) -> None:
    """An operator (or a test) can tell when a write has reached every worker's caches."""
    token = watched.token()
    time.sleep(1.5)
    before, listener = _feed_gauges(watched)
    assert listener == -1  # SQLite: no NOTIFY listener, the change signal and the poll instead
    watched.cli("user", "create", f"feed-{secrets.token_hex(3)}", "--project", watched.project_id)
    after = before
    deadline = time.monotonic() + 15  # catch-up on the next request or poll, then a 1 s flush
    while after <= before and time.monotonic() < deadline:
        for _ in range(6):  # new connections, so both workers see a request after the write
            httpx.get(watched.download_url(), headers={"X-Auth-Token": token})
        time.sleep(0.5)
        after, _ = _feed_gauges(watched)
    assert after > before


def test_metrics_are_refused_to_other_addresses_by_default(watched: CsscertServer) -> None:
    """The check uses the caller's address; seen through a trusted proxy from elsewhere, it is
    not loopback any more."""
    refused = httpx.get(f"{watched.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 200  # the proxy is not trusted: the peer (loopback) counts


def test_metrics_through_a_trusted_proxy_follow_the_forwarded_address(make_server: ServerFactory) -> None:
    server = make_server(
        env={"CSSCERT_TRUSTED_PROXIES": "127.0.0.1", "CSSCERT_METRICS_TOKEN": "s3cret-token"}
    )
    remote = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert remote.status_code == 403 and remote.json()["error_code"] == "CSS.0015"
    with_token = httpx.get(
        f"{server.url}/metrics",
        headers={"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer s3cret-token"},
    )
    assert with_token.status_code == 200
    assert httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_metrics_off_removes_the_route(make_server: ServerFactory) -> None:
    server = make_server(env={"CSSCERT_METRICS": "off", "CSSCERT_ACCESS_LOG": "off"})
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 404 and response.json()["error_code"] == "APIGW.0101"
    time.sleep(1.2)
    assert '"csscert.access"' not in _log_path(server).read_text()


def test_health_and_readiness(watched: CsscertServer) -> None:
    alive = httpx.get(f"{watched.url}/healthz")
    assert alive.status_code == 200 and alive.json()["status"] == "ok"
    ready = httpx.get(f"{watched.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"store": True, "ca": True, "changes": True}}
    assert httpx.head(f"{watched.url}/readyz").status_code == 200


def test_readiness_fails_without_a_trusted_ca_while_liveness_holds(make_server: ServerFactory) -> None:
    server = make_server()
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    # What another process could leave behind: every CA retired (by hand, in the database).
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db, db:
        db.execute("UPDATE certificate_authorities SET state = 'retired'")
        db.execute("UPDATE revision SET value = value + 1")
    response = httpx.get(f"{server.url}/readyz", timeout=15)
    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "unavailable",
        "checks": {"store": True, "ca": False, "changes": True},
    }
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive all the same


def test_http2_is_not_offered_unless_asked_for(watched: CsscertServer, make_server: ServerFactory) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    assert _first_bytes(watched.port, preface)[:9] != b"\x00\x00" and not _is_settings(
        _first_bytes(watched.port, preface)
    )
    opted = make_server(serve_args=["--http", "auto"])
    frame = _first_bytes(opted.port, preface)
    assert _is_settings(frame), frame
    settings = _settings(frame)
    assert settings[0x3] <= 16  # SETTINGS_MAX_CONCURRENT_STREAMS
    assert settings[0x6] <= 32 * 1024  # SETTINGS_MAX_HEADER_LIST_SIZE
    assert settings.get(0x4, 65535) <= 64 * 1024  # SETTINGS_INITIAL_WINDOW_SIZE


def _first_bytes(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        try:
            return sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return b""


def _is_settings(frame: bytes) -> bool:
    return len(frame) >= 9 and frame[3] == 0x4 and frame[4] & 0x1 == 0


def _settings(frame: bytes) -> dict[int, int]:
    length = int.from_bytes(frame[:3], "big")
    payload = frame[9 : 9 + length]
    return {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
        for i in range(0, len(payload), 6)
    }
