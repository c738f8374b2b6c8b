"""README.md as a newcomer runs it: every block marked `<!-- readme-test: run -->` runs as
written in a fresh shell, each from a new empty folder, with the venv's commands on PATH and a
private HOME; whatever the blocks start in the background is killed at the end."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKED = re.compile(r"<!-- readme-test: run -->\n```(sh|python)\n(.*?)\n```", re.S)
FIRST_COMMANDS = [
    "python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/csscert serve",
    "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest -n 2 -q",
]


def test_the_two_commands_at_the_top_stay_as_they_are() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[:2] == FIRST_COMMANDS


def test_no_link_leaves_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README.read_text()):
        assert not target.startswith(("http:", "https:", "/", "..")), target
        assert (ROOT / target.split("#")[0]).exists(), target


@pytest.mark.skipif(sys.platform != "linux", reason="the blocks are POSIX shell")
def test_every_marked_block_runs_as_written(tmp_path: Path) -> None:
    blocks = MARKED.findall(README.read_text())
    assert len(blocks) >= 6
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSSCERT_", "OS_"))}
    env.update(
        HOME=str(home),
        CSSCERT_PORT=str(free_port()),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
    )
    sessions: list[int] = []
    try:
        for index, (language, code) in enumerate(blocks):
            folder = tmp_path / f"block-{index}"
            folder.mkdir()
            command = ["bash", "-e", "-c", code] if language == "sh" else [sys.executable, "-c", code]
            proc = subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            sessions.append(proc.pid)
            try:
                out, err = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise AssertionError(f"block {index} timed out:\n{code}\n{out}\n{err}") from None
            assert proc.returncode == 0, (
                f"block {index} failed ({proc.returncode}):\n{code}\n--\n{out}\n{err}"
            )
            assert "Traceback" not in err, err
            if "s_server" in code:
                assert out.splitlines()[0] == "200" and "OK" in out, out
            if language == "python":
                assert out.startswith("-----BEGIN CERTIFICATE-----"), out
    finally:
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    assert (home / "from-openstack.cer").read_bytes() == (home / "CloudSearchService.cer").read_bytes()
    assert (home / "opensearch" / "node-3" / "opensearch.yml").is_file()
