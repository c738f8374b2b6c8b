"""The data directory is private: 0700, and every file in it 0600, whatever the umask; a directory
made looser by hand is tightened again on the next start. The banner holds no secret."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.server import CsscertServer, free_port


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask there is: whatever csscert makes must still be private."""
    old = os.umask(0)
    yield
    os.umask(old)


def _modes(data_dir: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            path = Path(root) / name
            modes[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def _assert_private(data_dir: Path) -> None:
    modes = _modes(data_dir)
    loose = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (data_dir / name).is_dir() else 0o600)
    }
    assert not loose, loose


def test_a_server_started_under_umask_0_keeps_everything_private(tmp_path: Path, open_umask: None) -> None:
    server = CsscertServer(data_dir=tmp_path / "data", port=free_port())
    server.start()
    try:
        token = server.token()
        assert httpx.get(server.download_url(), headers={"X-Auth-Token": token}).status_code == 200
        names = set(_modes(server.data_dir))
        assert {"csscert.db", "csscert.db-wal", "csscert.db-shm", "master.key", "revision.hint"} <= names
        assert "bootstrap-credentials.json" in names
        assert any(name.startswith("metrics/") for name in names), names
        _assert_private(server.data_dir)
        # The banner says where the credentials are and how to mint a token; it holds no token.
        banner = server.first_start_output
        assert str(server.data_dir / "bootstrap-credentials.json") in banner
        assert "token issue --user csscert-admin" in banner
        assert "gAAAA" not in banner and token not in banner
    finally:
        server.stop()


def test_a_loosened_data_directory_is_tightened_on_the_next_start(tmp_path: Path, open_umask: None) -> None:
    server = CsscertServer(data_dir=tmp_path / "data", port=free_port())
    server.cli("init")  # creates the data directory, database and keys
    os.chmod(server.data_dir, 0o755)
    for path in server.data_dir.iterdir():
        if path.is_file():
            os.chmod(path, 0o644)
    (server.data_dir / "notes.txt").write_text("left here by hand\n")
    os.chmod(server.data_dir / "notes.txt", 0o666)
    server.cli("project", "list")
    _assert_private(server.data_dir)
