"""``csscert backup`` / ``csscert restore``: a backup taken while downloads run restores into a fresh
data directory and into a fresh PostgreSQL database, and the restored service is the same service
to its clients: the old token, the old AK/SK and the same bytes; its CA signs on (``openssl verify``
passes for a node issued after the restore). A damaged, truncated, altered or newer backup, or the
wrong master key, is refused in one line and nothing is written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from custody_helpers import Seen, create_database, issue_and_verify, seen
from support.accounts import Account, new_account
from support.server import CsscertServer, ServerFactory, run_csscert

ADMIN_URL = os.environ.get("CSSCERT_TEST_POSTGRES_URL")
MAX_REQUESTS = 2000


@dataclass(frozen=True)
class Origin:
    server: CsscertServer
    account: Account
    token: str
    before: Seen
    backup: Path
    summary: dict[str, Any]
    old_node: Path  # issued before the backup


@pytest.fixture(scope="module")
def origin(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Origin:
    """A server with an account and a node certificate, backed up while downloads run (a few hundred)."""
    server = make_server(env={"CSSCERT_RATE_LIMITS": "off"})  # the load is one credential's
    account = new_account(server, prefix="bak")
    token = server.token(account.user, account.project_id)
    before = seen(server, token, account)
    work = tmp_path_factory.mktemp("backup")
    old_node = issue_and_verify(server, token, account.project_id, work / "before", name="old-node")

    statuses: list[int] = []
    started, stop = threading.Event(), threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(MAX_REQUESTS):  # bounded, whatever happens to the backup
                if i == 20:
                    started.set()
                if stop.is_set():
                    break
                answer = client.get(server.download_url(account.project_id), headers={"X-Auth-Token": token})
                statuses.append(answer.status_code)
        started.set()

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    assert started.wait(30)
    backup = work / "csscert.backup"
    served_before = len(statuses)
    summary = server.cli_json("backup", str(backup))
    served_during = len(statuses) - served_before
    stop.set()
    loader.join(60)
    assert not loader.is_alive()
    assert served_during > 0, "no download ran while the backup did"
    assert set(statuses) == {200}, statuses
    assert summary["rows"]["access_keys"] >= 2 and len(summary["ca_fingerprints"]) == 1
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    return Origin(server, account, token, before, backup, summary, old_node)


def _restored(tmp_path: Path, origin: Origin, **env: str) -> CsscertServer:
    server = CsscertServer(data_dir=tmp_path / "restored" / "data", env=env)
    server.data_dir.parent.mkdir(parents=True)
    key_file = origin.server.data_dir / "master.key"
    result = run_csscert(
        "--data-dir", str(server.data_dir), "restore", str(origin.backup), "--master-key-file", str(key_file),
        env=server.process_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return server


def _serves_the_same(restored: CsscertServer, origin: Origin, tmp_path: Path) -> None:
    restored.start()
    try:
        assert seen(restored, origin.token, origin.account) == origin.before  # same token, AK/SK, bytes
        issue_and_verify(
            restored, origin.token, origin.account.project_id, tmp_path / "after", name="new-node"
        )
        # the node certificate issued before the backup is trusted by the restored bundle too
        bundle = tmp_path / "after" / "served-ca.pem"
        old = str(origin.old_node)
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(bundle), "-untrusted", old, old],
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        restored.stop()


def test_a_backup_taken_under_load_restores_into_a_fresh_data_directory(
    origin: Origin, tmp_path: Path
) -> None:
    restored = _restored(tmp_path, origin)
    key = (origin.server.data_dir / "master.key").read_bytes()
    assert (restored.data_dir / "master.key").read_bytes() == key
    _serves_the_same(restored, origin, tmp_path)


@pytest.mark.skipif(not ADMIN_URL, reason="CSSCERT_TEST_POSTGRES_URL is not set")
def test_a_sqlite_backup_restores_into_a_fresh_postgresql_database(origin: Origin, tmp_path: Path) -> None:
    assert ADMIN_URL
    restored = _restored(tmp_path, origin, CSSCERT_DATABASE_URL=create_database(ADMIN_URL))
    _serves_the_same(restored, origin, tmp_path)
    # a backup of the PostgreSQL store (REPEATABLE READ export) holds the same CA
    again = restored.cli_json("backup", str(tmp_path / "from-postgresql.backup"))
    assert again["ca_fingerprints"] == origin.summary["ca_fingerprints"]
    assert again["rows"]["users"] == origin.summary["rows"]["users"]


def _rewrite(backup: Path, target: Path, change: Callable[[list[bytes]], list[bytes]]) -> Path:
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    target.write_bytes(gzip.compress(b"".join(change(lines))))
    return target


def _refused(tmp_path: Path, backup: Path, key_file: Path, expected: str) -> None:
    data_dir = tmp_path / f"target-{secrets.token_hex(3)}"
    result = run_csscert(
        "--data-dir", str(data_dir), "restore", str(backup), "--master-key-file", str(key_file)
    )
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert not data_dir.exists()  # nothing was written


def test_a_truncated_tampered_newer_or_foreign_backup_is_refused_in_one_line(
    origin: Origin, tmp_path: Path
) -> None:
    backup, key = origin.backup, origin.server.data_dir / "master.key"
    data = backup.read_bytes()

    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, truncated, key, "damaged or truncated")

    no_manifest = _rewrite(backup, tmp_path / "no-manifest.backup", lambda lines: lines[:-1])
    _refused(tmp_path, no_manifest, key, "truncated (it has no manifest)")

    def flip(lines: list[bytes]) -> list[bytes]:
        index = next(
            i for i, line in enumerate(lines) if b"CloudSearchService" in line and line.startswith(b"[")
        )
        lines[index] = lines[index].replace(b"CloudSearchService", b"CloudSearchServicf", 1)
        return lines

    _refused(tmp_path, _rewrite(backup, tmp_path / "flipped.backup", flip), key, "checksum does not match")

    def forge(lines: list[bytes]) -> list[bytes]:
        lines = flip(lines)
        trailer = json.loads(lines[-1])
        trailer["manifest"]["sha256"] = hashlib.sha256(b"".join(lines[:-1])).hexdigest()
        lines[-1] = json.dumps(trailer).encode() + b"\n"
        return lines

    _refused(tmp_path, _rewrite(backup, tmp_path / "forged.backup", forge), key, "altered")

    def newer(lines: list[bytes]) -> list[bytes]:
        header = json.loads(lines[0])
        header["version"] = 99
        return [json.dumps(header).encode() + b"\n", *lines[1:]]

    _refused(tmp_path, _rewrite(backup, tmp_path / "newer.backup", newer), key, "newer than this csscert")

    other_key = tmp_path / "other.key"
    other_key.write_text(secrets.token_urlsafe(32) + "\n")
    _refused(tmp_path, backup, other_key, "is not the one that sealed the backup")


def test_restore_refuses_a_data_directory_that_already_has_data(origin: Origin) -> None:
    result = origin.server.cli("restore", str(origin.backup), check=False)
    assert result.returncode == 1
    assert "not empty" in result.stderr
