"""Edges found in review: node-certificate output that must be all or nothing, validity and
setting bounds, IP literals given as DNS names, and Accept headers per RFC 9110."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from conftest import CsscertServer


def _issued_count(server: CsscertServer) -> int:
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db:
        return int(db.execute("SELECT count(*) FROM issued_certificates").fetchone()[0])


def test_a_node_named_ca_is_refused_before_anything_is_issued(server: CsscertServer, tmp_path: Path) -> None:
    before = _issued_count(server)
    out = tmp_path / "out"
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        "ca",
        "--dns",
        "ca.example",
        "--out",
        str(out),
        check=False,
    )
    assert result.returncode != 0 and "ca.crt" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    assert _issued_count(server) == before


@pytest.mark.parametrize("days", ["0", "5000000", "10000000000"])
def test_out_of_range_validity_is_a_clear_error(server: CsscertServer, tmp_path: Path, days: str) -> None:
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        "n",
        "--dns",
        "n.example",
        "--out",
        str(tmp_path),
        "--days",
        days,
        check=False,
    )
    assert result.returncode != 0 and "--days" in result.stderr and "Traceback" not in result.stderr


def test_an_ip_given_as_a_dns_name_is_refused(server: CsscertServer, tmp_path: Path) -> None:
    result = server.cli(
        "cert",
        "issue",
        "--project",
        server.project_id,
        "--name",
        "ipdns",
        "--dns",
        "127.0.0.1",
        "--out",
        str(tmp_path),
        check=False,
    )
    assert result.returncode != 0 and "--ip" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_expiry_warning_window_past_any_date_is_refused_at_start(server: CsscertServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}
    env["CSSCERT_CA_EXPIRY_WARNING_DAYS"] = "1000000"
    result = subprocess.run(
        [sys.executable, "-m", "csscert", "--data-dir", str(server.data_dir), "ca", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "ca_expiry_warning_days" in result.stderr


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
    response = httpx.get(server.download_url(), headers={"X-Auth-Token": admin_token, "Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type


def test_csscert_download_of_json_metadata_is_not_named_like_a_certificate(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csscert",
            "download",
            "--endpoint",
            server.url,
            "--project",
            server.project_id,
            "--token",
            admin_token,
            "--format",
            "json",
        ],
        cwd=tmp_path,
        env=server.process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["CloudSearchService.json"]
