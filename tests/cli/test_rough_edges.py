"""The rough edges a newcomer hit: downloads to standard output and never over a non-regular
file, --json for download, one fingerprint format, rules stated in messages, no library
warnings, caps said out loud."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.server import CsscertServer

COLON_FP = re.compile(r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}")


def _run(server: CsscertServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "csscert", *args],
        cwd=cwd,
        capture_output=True,
        timeout=60,
        env=server.process_env(),
    )


def _download_args(server: CsscertServer, token: str) -> list[str]:
    return ["download", "--endpoint", server.url, "--project", server.project_id, "--token", token]


def test_download_dash_o_dash_writes_to_standard_output(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    served = httpx.get(server.download_url(), headers={"X-Auth-Token": admin_token}).content
    result = _run(server, *_download_args(server, admin_token), "-o", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == served
    assert b"SHA-256" in result.stderr  # the report goes to stderr, out of the pipe's way
    assert list(tmp_path.iterdir()) == []  # no file called "-"


def test_download_never_replaces_a_link_or_device(
    server: CsscertServer, admin_token: str, tmp_path: Path
) -> None:
    real = tmp_path / "real.pem"
    real.write_text("mine")
    link = tmp_path / "link.pem"
    link.symlink_to(real)
    for target in (link, Path("/dev/stdout"), Path("/dev/null")):
        before = os.lstat(target)
        result = _run(
            server, *_download_args(server, admin_token), "-o", str(target), "--force", cwd=tmp_path
        )
        assert result.returncode == 1 and b"not a regular file" in result.stderr, result.stderr
        assert b"-o -" in result.stderr and b"Traceback" not in result.stderr
        after = os.lstat(target)
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert real.read_text() == "mine"
    plain = tmp_path / "plain.pem"
    plain.write_text("old")
    assert (
        _run(
            server, *_download_args(server, admin_token), "-o", str(plain), "--force", cwd=tmp_path
        ).returncode
        == 0
    )
    assert plain.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_download_json(server: CsscertServer, admin_token: str, tmp_path: Path) -> None:
    result = _run(server, *_download_args(server, admin_token), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["file"] == str(tmp_path / "CloudSearchService.cer")
    assert shown["bytes"] == (tmp_path / "CloudSearchService.cer").stat().st_size
    active = server.cli_json("ca", "show")["fingerprint_sha256"]
    assert shown["fingerprints_sha256"] == [active]  # JSON: plain hex, as everywhere in JSON
    assert shown["content_type"] == "application/octet-stream" and shown["etag"] and shown["request_id"]
    both = _run(server, *_download_args(server, admin_token), "--json", "-o", "-", cwd=tmp_path)
    assert both.returncode == 1 and b"standard output" in both.stderr


def test_one_fingerprint_format_for_people_and_both_accepted(server: CsscertServer) -> None:
    fp = server.cli_json("ca", "show")["fingerprint_sha256"]
    colon = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    shown, listed = server.cli("ca", "show").stdout, server.cli("ca", "list").stdout
    assert colon in shown and colon in listed
    assert fp not in shown and fp not in listed
    for prefix in (fp[:8], colon[:11], colon[:11].lower()):
        refused = server.cli("ca", "retire", prefix, check=False)  # the active CA: found, then refused
        assert refused.returncode == 1 and "active" in refused.stderr, (prefix, refused.stderr)


def test_a_too_short_fingerprint_states_the_rule(server: CsscertServer) -> None:
    result = server.cli("ca", "retire", "96:10:5b", check=False)
    assert result.returncode == 1
    assert "give at least 8 hex digits of the SHA-256 fingerprint, colons optional" in result.stderr


def test_no_library_warning_reaches_the_user(server: CsscertServer, tmp_path: Path) -> None:
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if not system.exists():
        pytest.skip("no system CA bundle")
    result = _run(server, "verify", f"https://127.0.0.1:{server.port}", "--cafile", str(system), cwd=tmp_path)
    assert result.returncode == 1 and b"does not speak TLS" in result.stderr  # our server speaks HTTP
    assert b"Warning" not in result.stderr and b"warn" not in result.stderr.lower()


def test_a_capped_validity_is_said_on_stderr_and_in_json(server: CsscertServer, tmp_path: Path) -> None:
    result = server.cli(
        "cert",
        "issue",
        "--name",
        "capped",
        "--dns",
        "capped",
        "--days",
        "5000",
        "--out",
        str(tmp_path),
        "--json",
    )
    shown = json.loads(result.stdout)
    assert shown["capped_at_ca_expiry"] is True and shown["requested_days"] == 5000
    assert "asked for 5000 days" in result.stderr and "ca rotate" in result.stderr
    ca_end = server.cli_json("ca", "show")["not_after"]
    assert shown["not_after"] == ca_end
    normal = server.cli("cert", "issue", "--name", "uncapped", "--dns", "u", "--out", str(tmp_path), "--json")
    assert json.loads(normal.stdout)["capped_at_ca_expiry"] is False
    # Nothing said but the audit trail's line for the issuance.
    assert [line for line in normal.stderr.splitlines() if " csscert.audit " not in line] == []
