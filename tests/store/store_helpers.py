"""Stores on real databases for the store tests: SQLite files and PostgreSQL databases.

PostgreSQL comes from CSSCERT_TEST_POSTGRES_URL (`.ci/run` starts one; each store gets a fresh
database). Tests that stop, restart or freeze the server start a private cluster of their own
(:func:`private_postgres`), so they never disturb the shared one other tests run against.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from csscert.model import CAState, CertificateAuthority, FernetKey, IssuedCertificate, new_id
from csscert.store import SqlStore, migrate

ADMIN_URL = os.environ.get("CSSCERT_TEST_POSTGRES_URL")
if not ADMIN_URL and os.environ.get("CI"):
    raise RuntimeError("CI must provide CSSCERT_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
needs_postgres = pytest.mark.skipif(not ADMIN_URL, reason="CSSCERT_TEST_POSTGRES_URL is not set")
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=needs_postgres),
]


def create_database(admin_url: str) -> str:
    url = make_url(admin_url)
    name = f"csscert_store_{secrets.token_hex(6)}"
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def empty_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'store-{secrets.token_hex(4)}.db'}"
    assert ADMIN_URL
    return create_database(ADMIN_URL)


def new_store(backend: str, tmp_path: Path, **options: object) -> SqlStore:
    store = SqlStore(empty_url(backend, tmp_path), **options)  # type: ignore[arg-type]
    migrate(store)
    return store


def sample_ca(scope: str = "region", state: CAState = CAState.ACTIVE) -> CertificateAuthority:
    now = datetime.now(UTC)
    return CertificateAuthority(
        id=new_id(),
        scope=scope,
        serial=secrets.token_hex(8),
        subject="CN=test",
        fingerprint_sha256=secrets.token_hex(32),
        not_before=now,
        not_after=now,
        cert_pem=b"-----BEGIN CERTIFICATE-----\n",
        key_sealed="sealed",
        state=state,
        created_at=now,
        changed_at=now,
    )


def sample_issued(ca_id: str, project_id: str) -> IssuedCertificate:
    now = datetime.now(UTC)
    return IssuedCertificate(
        serial=secrets.token_hex(8),
        ca_id=ca_id,
        project_id=project_id,
        name="node-1",
        sans="node-1",
        fingerprint_sha256=secrets.token_hex(32),
        not_before=now,
        not_after=now,
        created_at=now,
    )


def sample_fernet() -> FernetKey:
    return FernetKey(new_id(), "sealed", True, datetime.now(UTC))


# -- a private PostgreSQL cluster -----------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int
    socket_dir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=60)

    def ctl(self, *args: str) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "log"), *args
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self.ctl("-w", "-o", options, "start")

    def stop(self) -> None:
        self.ctl("-w", "-m", "fast", "stop")

    def processes(self) -> list[int]:
        """The postmaster and every child of it (backends, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the whole cluster; SIGCONT it on the way out, whatever happens."""
        pids = self.processes()
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must have PostgreSQL's server binaries (.ci/run installs them)")
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="csscert-store-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        cluster = PrivatePostgres(pg_bin, root / "data", _free_port(), root)
        cluster._as_postgres(str(pg_bin / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres")
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(Exception):
                for pid in cluster.processes():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                cluster.ctl("-w", "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False
