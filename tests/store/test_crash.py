"""SIGKILL in the middle of writes loses nothing that was acknowledged, on SQLite and PostgreSQL.

Writes stream in two ways at once: token revocations through the API (``DELETE /v3/auth/tokens``,
acknowledged by a 204) and users made by the CLI (``csscert user create``, acknowledged by exit
status 0). The server is killed with SIGKILL (its whole process group) while they run, and so is
one CLI process in the middle of its command. After a restart (which migrates, so the store must
be consistent) every acknowledged revocation is refused, every acknowledged user exists, and the
user whose command was killed either exists whole (with its grant) or not at all.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import download, login_token
from store_helpers import BACKENDS, empty_url
from support.server import CsscertServer

pytestmark = pytest.mark.slow

STREAM_SECONDS = 2.0


@pytest.fixture(params=BACKENDS)
def crash_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CsscertServer]:
    env = {}
    if request.param == "postgresql":
        env = {"CSSCERT_DATABASE_URL": empty_url("postgresql", tmp_path)}
    server = CsscertServer(data_dir=tmp_path / "data", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RevocationStream:
    """Mints child tokens (``token`` method) and revokes each with ``DELETE /v3/auth/tokens``;
    remembers the ones whose revocation was acknowledged."""

    def __init__(self, server: CsscertServer, parent: str) -> None:
        self.server = server
        self.parent = parent
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=5) as client:
            while not self.stop.is_set():
                try:
                    child = self._mint(client)
                    if child is None:
                        continue
                    answer = client.delete(
                        "/v3/auth/tokens", headers={"X-Auth-Token": self.parent, "X-Subject-Token": child}
                    )
                except httpx.TransportError:
                    return  # the server is gone: whatever was in flight was not acknowledged
                if answer.status_code == 204:
                    self.acknowledged.append(child)

    def _mint(self, client: httpx.Client) -> str | None:
        """A child token, or None when the credential's rate limit said to slow down (the
        stream then waits as a client would: throttling is not what this test is about)."""
        body = {"auth": {"identity": {"methods": ["token"], "token": {"id": self.parent}}}}
        minted = client.post("/v3/auth/tokens?nocatalog", json=body)
        if minted.status_code == 429:
            self.stop.wait(min(float(minted.headers.get("retry-after", "1")), 1.0))
            return None
        assert minted.status_code == 201, minted.text
        return minted.headers["x-subject-token"]


class UserStream:
    """``csscert user create`` one after the other; remembers the names whose command exited 0."""

    def __init__(self, server: CsscertServer) -> None:
        self.server = server
        self.acknowledged: list[str] = []
        self.seconds: list[float] = []  # how long each acknowledged command took
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            name = f"crash-{secrets.token_hex(4)}"
            started = time.monotonic()
            if (
                self.server.cli(
                    "user", "create", name, "--project", self.server.project_id, check=False
                ).returncode
                == 0
            ):
                self.acknowledged.append(name)
                self.seconds.append(time.monotonic() - started)


def _cli_killed_mid_command(server: CsscertServer, after: float) -> str:
    """Start ``user create`` and SIGKILL it ``after`` seconds later."""
    name = f"killed-{secrets.token_hex(4)}"
    command = [
        sys.executable, "-m", "csscert", "--data-dir", str(server.data_dir),
        "user", "create", name, "--project", server.project_id,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=server.process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(after)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return name


def test_sigkill_during_writes_loses_no_acknowledged_write(crash_server: CsscertServer) -> None:
    server = crash_server
    boot = server.bootstrap
    parent = login_token(server, boot["user_name"], boot["password"], server.project_id)
    revocations = [RevocationStream(server, parent) for _ in range(2)]
    users = UserStream(server)
    streams: list[RevocationStream | UserStream] = [*revocations, users]
    threads = [threading.Thread(target=stream.run) for stream in streams]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + STREAM_SECONDS
        while not users.seconds:
            time.sleep(0.05)
        # Late in a command's usual run, where it writes (its start-up is most of the time).
        killed_user = _cli_killed_mid_command(server, random.uniform(0.6, 1.2) * users.seconds[0])
        while time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop(signal.SIGKILL)  # the server and its worker, mid-stream
    finally:
        for stream in streams:
            stream.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    revoked = [token for stream in revocations for token in stream.acknowledged]
    assert len(revoked) >= 5 and users.acknowledged, "too few writes were acknowledged to test anything"

    if server.env.get("CSSCERT_DATABASE_URL") is None:
        with sqlite3.connect(server.data_dir / "csscert.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    server.start()  # migrates and serves: the store is consistent
    with httpx.Client() as client:
        lost = [
            t for t in revoked if download(server, t, server.project_id, client=client).status_code != 401
        ]
    assert not lost, f"{len(lost)} of {len(revoked)} acknowledged revocations were lost"
    assert download(server, parent, server.project_id).status_code == 200  # what was not revoked still works
    listed = {row["name"]: row for row in json.loads(server.cli("user", "list", "--json").stdout)}
    missing = [name for name in users.acknowledged if name not in listed]
    assert not missing, f"acknowledged users lost: {missing}"
    if killed_user in listed:  # all or nothing
        assert listed[killed_user]["projects"] == [server.project_id]
    outcome = "exists whole" if killed_user in listed else "does not exist"
    print(
        f"{len(revoked)} revocations and {len(users.acknowledged)} users acknowledged before SIGKILL, "
        f"all kept; the user of the killed command {outcome}"
    )
