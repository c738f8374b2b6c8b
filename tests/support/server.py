"""The real ``csscert serve`` on an ephemeral port, and the real CLI beside it on the same data."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: ``csscert`` exit codes: a refused command prints one ``error:`` line and exits 1; a command
#: line click cannot parse (an unknown option, a value out of an option's range) exits 2.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``CSSCERT_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}
    env.update(extra)
    return env


def run_csscert(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m csscert ARGS`` as a user runs it (no data directory unless ``args`` name one)."""
    return subprocess.run(
        [sys.executable, "-m", "csscert", *args],
        capture_output=True, text=True, cwd=cwd, env=clean_env() if env is None else env, timeout=timeout,
    )  # fmt: skip


@dataclass
class CsscertServer:
    """A real csscert server process plus helpers to run the CLI on the same data."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)  # global CLI options, e.g. ["--ca-scope", "project"]
    serve_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    first_start_output: str = ""
    tls: bool = False  # serve HTTPS with a certificate from csscert's own CA (``serve --tls``)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.data_dir / "bootstrap-credentials.json").read_text())
        return loaded

    @property
    def project_id(self) -> str:
        return str(self.bootstrap["project_id"])

    @property
    def log_file(self) -> Path:
        """Where the server process writes its log (stderr)."""
        return self.data_dir.parent / f"server-{self.port}.log"

    def download_url(self, project_id: str | None = None) -> str:
        return f"{self.url}/v1.0/{project_id or self.project_id}/cer/download"

    def process_env(self) -> dict[str, str]:
        return clean_env(**self.env)

    def cli(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``csscert --data-dir DATA ARGS``; with ``check``, anything but exit 0 fails the test."""
        command = [sys.executable, "-m", "csscert", "--data-dir", str(self.data_dir), *self.extra_args, *args]
        env = {**self.process_env(), **(env_extra or {})}
        result = subprocess.run(command, input=input, capture_output=True, text=True, env=env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def token(self, user: str = "csscert-admin", project: str | None = None) -> str:
        issued = self.cli("token", "issue", "--user", user, "--project", project or self.project_id)
        return issued.stdout.strip()

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None, "already running"
        log = open(self.log_file, "ab")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "csscert",
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
            "serve",
            "--port",
            str(self.port),
            *self.serve_args,
            *(["--tls"] if self.tls else []),
        ]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, env=self.process_env(), start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"csscert serve exited with {self.proc.returncode}:\n{out}")
            try:
                # Readiness only: a TLS server's certificate is checked by the tests themselves.
                if httpx.get(f"{self.url}/healthz", timeout=1.0, verify=False).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("csscert serve did not become ready")
        # The banner is printed before the server starts, so it is complete by now.
        if self.proc.stdout is not None:
            os.set_blocking(self.proc.stdout.fileno(), False)
            chunk = self.proc.stdout.read()
            self.first_start_output += chunk.decode() if chunk else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


ServerFactory = Callable[..., CsscertServer]
