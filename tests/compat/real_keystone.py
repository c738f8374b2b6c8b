"""The real OpenStack Keystone, from PyPI, run beside csscert for the differential tests.

Keystone gets a virtual environment of its own (it pins libraries csscert does not want), built
once and cached under ``~/.cache/csscert-tests/`` keyed by the versions installed, so only the
first run on a machine pays for ``pip install`` (about a minute; see the README). The same venv
holds python-openstackclient, so the ``openstack`` command runs against both servers.

Each :class:`RealKeystone` is a fresh deployment in a temporary directory: SQLite, Fernet keys,
``keystone-manage db_sync`` and ``bootstrap``, then Keystone's own WSGI application under
werkzeug's threaded server (installed with Keystone, through Flask) on an ephemeral loopback
port. Nothing is mocked; the mirror of csscert's data is made through Keystone's admin API.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["KEYSTONE_VERSION", "OPENSTACKCLIENT_VERSION", "RealKeystone", "keystone_venv"]

KEYSTONE_VERSION = "30.0.0"
OPENSTACKCLIENT_VERSION = "10.5.0"
_CACHE = Path(os.environ.get("CSSCERT_TEST_CACHE", Path.home() / ".cache" / "csscert-tests"))
_INSTALL_TIMEOUT = 900  # seconds; a cold install takes about one minute here

# Keystone's WSGI app under werkzeug. oslo.config reads sys.argv, so the port comes first and
# is taken off before Keystone is imported.
_SERVE = """
import sys
port = int(sys.argv.pop(1))
from werkzeug.serving import make_server
from keystone.server import wsgi
server = make_server("127.0.0.1", port, wsgi.initialize_public_application(), threaded=True)
print("ready", flush=True)
server.serve_forever()
"""

_CONFIG = """
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{root}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {root}/fernet-keys
[fernet_receipts]
key_repository = {root}/fernet-receipts
[credential]
key_repository = {root}/credential-keys
"""


def keystone_venv() -> Path:
    """The cached virtual environment with Keystone and the openstack CLI, built if missing.

    Built under a lock (concurrent test workers build it once); the ``complete`` marker is
    written last, so a build that was killed half-way is thrown away and redone.
    """
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = _CACHE / f"keystone-venv-{KEYSTONE_VERSION}-osc-{OPENSTACKCLIENT_VERSION}-{python}"
    if (venv / "complete").exists():
        return venv
    _CACHE.mkdir(parents=True, exist_ok=True)
    with open(_CACHE / "keystone-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "complete").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        install = subprocess.run(
            [
                str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                f"keystone=={KEYSTONE_VERSION}", f"python-openstackclient=={OPENSTACKCLIENT_VERSION}",
            ],
            capture_output=True, text=True, timeout=_INSTALL_TIMEOUT,
        )  # fmt: skip
        if install.returncode != 0:
            raise RuntimeError(
                f"installing Keystone failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}"
            )
        (venv / "complete").write_text(f"installed in {time.monotonic() - started:.1f} s\n")
        return venv


@dataclass
class RealKeystone:
    """One Keystone deployment (SQLite, Fernet) in ``root``, served on ``port``."""

    root: Path
    venv: Path
    port: int
    region: str
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    proc: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CSSCERT_"))}
        env["OS_KEYSTONE_CONFIG_FILES"] = str(self.root / "keystone.conf")
        env["OS_KEYSTONE_CONFIG_DIR"] = str(self.root)
        return env

    def _manage(self, *args: str) -> None:
        command = [
            str(self.venv / "bin" / "keystone-manage"),
            "--config-file",
            str(self.root / "keystone.conf"),
        ]
        done = subprocess.run([*command, *args], capture_output=True, text=True, env=self._env(), timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed:\n{done.stderr[-3000:]}")

    def start(self) -> None:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("fernet-keys", "fernet-receipts", "credential-keys"):
            (self.root / name).mkdir(mode=0o700, exist_ok=True)
        (self.root / "keystone.conf").write_text(_CONFIG.format(root=self.root))
        (self.root / "serve.py").write_text(_SERVE)
        user = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        # Each keystone-manage run is mostly Keystone's import time: the keys are made while the
        # database is. (No credential keys: nothing here stores credentials.)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            keys = pool.submit(self._manage, "fernet_setup", *user)
            self._manage("db_sync")
            self._manage(
                "bootstrap",
                "--bootstrap-password", self.admin_password,
                "--bootstrap-public-url", f"{self.url}/v3",
                "--bootstrap-region-id", self.region,
                "--bootstrap-service-name", "iam",
            )  # fmt: skip
            keys.result()
        self.timings["setup"] = time.monotonic() - started
        log = open(self.root / "keystone.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "python"), str(self.root / "serve.py"), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=log, env=self._env(), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Keystone exited: {(self.root / 'keystone.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v3", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("Keystone did not answer within 60 s")
        self.timings["start"] = time.monotonic() - started

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    # -- the admin API, to mirror csscert's data ---------------------------------------

    def admin(self) -> httpx.Client:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": self.admin_password,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        response = httpx.post(f"{self.url}/v3/auth/tokens", json=body, timeout=30)
        response.raise_for_status()
        return httpx.Client(
            base_url=self.url, headers={"X-Auth-Token": response.headers["x-subject-token"]}, timeout=30
        )

    @staticmethod
    def create(client: httpx.Client, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json={key: body})
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        made: dict[str, Any] = response.json()[key]
        return made
