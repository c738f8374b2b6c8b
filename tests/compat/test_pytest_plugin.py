"""The pytest plugin as a user meets it: a test file in a folder of its own (no conftest), run by
a plain `pytest` in a temporary directory, using the official SDK against `csscert_server`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytest-plugin" / "test_css_client.py"


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSSCERT_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_users_test_gets_a_server_from_the_plugin(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    leftovers = [p for p in Path("/tmp").glob("csscert-ephemeral-*") if p.stat().st_uid == os.getuid()]
    assert not [p for p in leftovers if p.stat().st_mtime > (tmp_path.stat().st_mtime)]  # removed on exit


def test_the_plugin_can_be_switched_off(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    result = _pytest(tmp_path, "-p", "no:csscert")
    assert result.returncode != 0 and "fixture 'csscert_server' not found" in result.stdout
