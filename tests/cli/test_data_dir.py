"""Only `init` and `serve` create data; every other command on missing, misplaced or broken data
fails in one line that names the absolute path, the cause and the fix."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}


def csscert(
    *args: str, cwd: Path, env: dict[str, str] | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "csscert", *args],
        cwd=cwd,
        env={**PLAIN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_commands_elsewhere_never_create_data_and_say_where_they_looked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (
        ["project", "list"],
        ["ca", "show"],
        ["cert", "list"],
        ["token", "issue", "--user", "u", "--project", "p"],
        ["db", "upgrade"],
    ):
        line = one_line_error(csscert(*command, cwd=elsewhere))
        assert str(elsewhere / "csscert-data") in line, line
        assert "csscert init" in line and "--data-dir" in line and "CSSCERT_DATA_DIR" in line
    assert list(elsewhere.iterdir()) == []  # no ./csscert-data conjured up, and no CA in it


def test_init_once_then_every_command_from_any_folder_with_the_variable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    created = json.loads(csscert("--data-dir", str(data), "init", "--json", cwd=home).stdout)
    assert created["created"] and created["data_dir"] == str(data)
    ca_before = json.loads(csscert("--data-dir", str(data), "ca", "show", "--json", cwd=home).stdout)
    for folder in (tmp_path, home, Path("/")):
        shown = csscert("ca", "show", "--json", cwd=folder, env={"CSSCERT_DATA_DIR": str(data)})
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["fingerprint_sha256"] == ca_before["fingerprint_sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "home"]


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "csscert-data"
    target.write_text("not a directory")
    for command in (["project", "list"], ["init"], ["serve", "--port", "1"]):
        line = one_line_error(csscert(*command, cwd=tmp_path))
        assert f"{target} is a file, not a directory" in line and "--data-dir" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_an_unwritable_data_dir() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as base:  # pytest's own folders are 0700
        _unwritable(Path(base))


def _unwritable(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data = tmp_path / "data"
    csscert("--data-dir", str(data), "init", cwd=tmp_path)
    for path in [data, *data.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by others, writable only by root
    nobody = 65534
    line = one_line_error(
        csscert("--data-dir", str(data), "project", "create", "x", cwd=Path("/"), user=nobody)
    )
    assert str(data) in line and ("read-only" in line or "permission denied" in line), line
    assert "write access" in line and "--data-dir" in line, line
    line = one_line_error(csscert("--data-dir", str(tmp_path / "new"), "init", cwd=Path("/"), user=nobody))
    assert f"cannot create the data directory {tmp_path / 'new'}" in line and "--data-dir" in line, line


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_is_one_line_with_cause_and_fix(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        data = disk / "data"
        assert csscert("--data-dir", str(data), "init", cwd=tmp_path).returncode == 0
        filler = disk / "filler"
        with open(filler, "wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        line = one_line_error(
            csscert(
                "--data-dir",
                str(data),
                "cert",
                "issue",
                "--name",
                "n1",
                "--dns",
                "n1",
                "--out",
                str(disk / "certs"),
                cwd=tmp_path,
            )
        )
        assert "full" in line and "free some space" in line, line
        filler.unlink()
        # Nothing half-done: the certificate that could not be written is not on record.
        listed = csscert("--data-dir", str(data), "cert", "list", "--json", cwd=tmp_path)
        assert json.loads(listed.stdout) == []
