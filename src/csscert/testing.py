"""A pytest plugin for people who test their CSS client code against csscert (as moto is for AWS).

Installed with csscert and registered through the ``pytest11`` entry point, so any test in a
project that has csscert installed can ask for the ``csscert_server`` fixture::

    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcss.v1 import CssClient, DownloadCertRequest

    def test_my_download(csscert_server):
        client = (CssClient.new_builder()
                  .with_credentials(BasicCredentials(csscert_server.access_key, csscert_server.secret_key,
                                                     csscert_server.project_id))
                  .with_endpoint(csscert_server.endpoint).build())
        assert client.download_cert(DownloadCertRequest()).raw_content.startswith(b"-----BEGIN")

``csscert_server`` is one server per test session: ``csscert serve --ephemeral`` on a free port
with a temporary data directory that is removed when it stops. ``csscert_tls_server`` is the
same over HTTPS (its certificate verifies with ``ca_file``). ``csscert_factory(tls=...)`` starts
more, each stopped at the end of the test that made it. Disable the plugin with
``pytest -p no:csscert``.

This module is imported by every pytest run in an environment where csscert is installed, so
it imports nothing beyond the standard library (and pytest) until a fixture is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = ["CsscertEndpoint", "start_server"]

_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class CsscertEndpoint:
    """How to reach one running csscert, and the credentials of its bootstrap user."""

    endpoint: str  # e.g. http://127.0.0.1:41234, the CSS endpoint for the SDKs
    iam_endpoint: str  # endpoint + "/v3", the Keystone auth_url
    region: str
    domain_name: str  # user_domain_name / project_domain_name (not "Default")
    project_id: str
    project_name: str
    user_name: str
    password: str = field(repr=False)
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(repr=False)  # an X-Auth-Token of user_name, scoped to project_id
    ca_file: Path  # CloudSearchService.cer: verifies downloads' clusters, and csscert over HTTPS
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    @property
    def download_url(self) -> str:
        return f"{self.endpoint}/v1.0/{self.project_id}/cer/download"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``csscert ARGS`` on this server's data (e.g. ``cli("user", "create", ...)``)."""
        command = [sys.executable, "-m", "csscert", "--data-dir", str(self.data_dir), *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=True, env=_clean_env()
        )

    def stop(self) -> None:
        _stop(self.process)


def _clean_env() -> dict[str, str]:
    """The caller's environment without CSSCERT_* settings: a test server must not pick up a
    developer's real data directory or database."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


def _first_line(stream: IO[bytes], timeout: float) -> bytes:
    """The first line of ``stream``, or b"" after ``timeout`` seconds (read in a thread, so a
    server that never answers cannot hang the test session)."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else b""


def start_server(
    *, tls: bool = False, args: tuple[str, ...] = (), timeout: float = _START_TIMEOUT
) -> CsscertEndpoint:
    """Start ``csscert serve --ephemeral`` on a free port; return once it answers."""
    log = tempfile.NamedTemporaryFile(prefix="csscert-server-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "csscert", "serve", "--ephemeral", "--port", "0", *args]
    if tls:
        command.append("--tls")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, env=_clean_env(), start_new_session=True
    )
    log.close()
    assert process.stdout is not None
    line = _first_line(process.stdout, timeout)
    if not line:
        _stop(process)
        tail = Path(log.name).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"csscert serve --ephemeral did not start within {timeout:g} s:\n{tail}")
    Path(log.name).unlink(missing_ok=True)
    details: dict[str, Any] = json.loads(line)
    return CsscertEndpoint(
        endpoint=details["endpoint"],
        iam_endpoint=details["iam_endpoint"],
        region=details["region"],
        domain_name=details["domain_name"],
        project_id=details["project_id"],
        project_name=details["project_name"],
        user_name=details["user_name"],
        password=details["password"],
        access_key=details["access_key"],
        secret_key=details["secret_key"],
        token=details["token"],
        ca_file=Path(details["ca_file"]),
        data_dir=Path(details["data_dir"]),
        process=process,
    )


@pytest.fixture(scope="session")
def csscert_server() -> Iterator[CsscertEndpoint]:
    """A csscert server over HTTP for the whole test session (temporary data, free port)."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def csscert_tls_server() -> Iterator[CsscertEndpoint]:
    """A csscert server over HTTPS; clients verify it with ``ca_file`` (CloudSearchService.cer)."""
    server = start_server(tls=True)
    yield server
    server.stop()


@pytest.fixture
def csscert_factory() -> Iterator[Callable[..., CsscertEndpoint]]:
    """Start servers of your own (``csscert_factory(tls=True)``); stopped after the test."""
    started: list[CsscertEndpoint] = []

    def factory(*, tls: bool = False, args: tuple[str, ...] = ()) -> CsscertEndpoint:
        server = start_server(tls=tls, args=args)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
