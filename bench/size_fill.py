"""Filling a data directory for the size benchmark, and the identities its load uses.

* :func:`fill`: a served-once data dir (bootstrap), then N users with one AK/SK each through
  ``csscert user import FILE --credentials-out FILE`` (the operator's path), then R live token
  revocations with :func:`add_revocations`;
* :func:`add_revocations`: the bulk helper. There is no bulk revocation command, and R calls of
  ``SqlStore.add_revocation`` (one transaction each) would take minutes at 100 k, so it inserts
  rows into ``revocations`` (expiry 1 to 23 h ahead, unknown users) and the matching ``changes``
  rows in transactions of 10 000 through the store's own write transaction (``SqlStore._write``:
  revision bump, change rows, NOTIFY), exactly what ``add_revocation`` records per row;
* :func:`token_requests` / :func:`aksk_requests`: the headers of many distinct identities (a
  token of each of K users; a signed request of each of K access keys) for wrk to rotate over.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness

USER_PREFIX = "u"
FILLED = "filled.json"  # written last: a directory without it is not a usable cache


def user_name(i: int) -> str:
    return f"{USER_PREFIX}{i:07d}"


@dataclass
class Filled:
    """A filled data directory and what the benchmark needs to drive it."""

    root: Path
    users: int
    revocations: int
    project_id: str
    bootstrap_user: str
    access_key: str
    import_seconds: float
    revocation_seconds: float
    reused: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.jsonl"

    def secret_key(self) -> str:
        creds = json.loads((self.data_dir / "bootstrap-credentials.json").read_text())
        return str(creds["secret_key"])


def cli(data_dir: Path, env: dict[str, str], *args: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        [*harness.CSSCERT, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=harness.clean_env(env),
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"csscert {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def fill(root: Path, users: int, revocations: int, env: dict[str, str], *, reuse: bool) -> Filled:
    """``root`` filled with ``users`` users and ``revocations`` revocations (reused when ``reuse``
    and a complete fill of the same size is there)."""
    marker = root / FILLED
    if reuse and marker.exists():
        filled = Filled(root=root, **{k: v for k, v in json.loads(marker.read_text()).items() if k != "root"})
        if filled.users == users and filled.revocations == revocations:
            filled.reused = True
            return filled
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    fixture = harness.bootstrap(root, env)
    creds = json.loads((fixture.data_dir / "bootstrap-credentials.json").read_text())
    lines = root / "users.jsonl"
    with lines.open("w") as out:
        for i in range(users):
            out.write(json.dumps({"name": user_name(i), "projects": [fixture.project_id]}) + "\n")
    print(f"  importing {users} users with one access key each ...", flush=True)
    started = time.perf_counter()
    cli(
        fixture.data_dir,
        env,
        "user",
        "import",
        str(lines),
        "--credentials-out",
        str(root / "credentials.jsonl"),
    )
    import_seconds = time.perf_counter() - started
    lines.unlink()
    print(f"  imported in {import_seconds:.1f} s; adding {revocations} revocations ...", flush=True)
    started = time.perf_counter()
    add_revocations(fixture.data_dir, env, revocations)
    revocation_seconds = time.perf_counter() - started
    filled = Filled(
        root, users, revocations, fixture.project_id, creds["user_name"], fixture.access_key,
        round(import_seconds, 2), round(revocation_seconds, 2),
    )  # fmt: skip
    record = {k: v for k, v in asdict(filled).items() if k not in ("root", "reused")}
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return filled


@contextmanager
def service(data_dir: Path, env: dict[str, str]) -> Iterator[Any]:
    """The csscert Service of a data dir, in this process (what a CLI command opens)."""
    from csscert.service import Service
    from csscert.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=env.get("CSSCERT_DATABASE_URL"))
    svc = Service(settings)
    try:
        svc.initialize()
        yield svc
    finally:
        svc.close()


def add_revocations(data_dir: Path, env: dict[str, str], count: int, batch: int = 10_000) -> None:
    """``count`` live revocations of unknown tokens (see the module docstring)."""
    from sqlalchemy import insert

    from csscert.store import schema

    now = datetime.now(UTC)
    with service(data_dir, env) as svc:
        store = svc.store
        for start in range(0, count, batch):
            rows = [
                {
                    "audit_id": secrets.token_urlsafe(16),
                    "expires_at": now + timedelta(seconds=random.randint(3600, 23 * 3600)),
                    "created_at": now,
                    "user_id": None,
                }
                for _ in range(min(batch, count - start))
            ]
            with store._write() as tx:  # the store's own write: revision, change rows, NOTIFY
                tx.execute(insert(schema.revocations), rows)
                for row in rows:
                    tx.changed("revocation", row["audit_id"])


def tokens(data_dir: Path, env: dict[str, str], project_id: str, count: int, users_total: int) -> list[str]:
    """``count`` new tokens of imported users, one per user while there are enough users (a
    contiguous page of names from a random start; the server's caches hash, so order is moot)."""
    from csscert.identity.directory import mint_token, token_codec

    with service(data_dir, env) as svc:
        store = svc.store
        domain = store.domain_by_name(svc.settings.domain_name)
        project = store.project(project_id)
        assert domain is not None and project is not None
        page = min(count, users_total)
        first = random.randrange(max(1, users_total - page + 1))
        after = user_name(first - 1) if first > 0 else None
        users = [u for u in store.users_page(after, page, domain_id=domain.id) if project.id in u.project_ids]
        codec = token_codec(store.fernet_keys(), svc.sealer)
        now = time.time()
        ttl = svc.settings.token_ttl_seconds
        return [
            mint_token(codec, ttl, users[i % len(users)], project, ["token"], now).token for i in range(count)
        ]


def token_requests(
    data_dir: Path, env: dict[str, str], project_id: str, count: int, users_total: int
) -> list[str]:
    """``X-Auth-Token`` header lines for wrk: one token of each of ``count`` users."""
    return [f"X-Auth-Token: {t}" for t in tokens(data_dir, env, project_id, count, users_total)]


def sample_credentials(path: Path, count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (access key, secret key) pairs from a credentials file (reservoir sample)."""
    rng = random.Random(seed)
    chosen: list[tuple[str, str]] = []
    with path.open() as lines:
        for i, line in enumerate(lines):
            row = json.loads(line)
            pair = (row["access_key"], row["secret_key"])
            if len(chosen) < count:
                chosen.append(pair)
            elif (j := rng.randrange(i + 1)) < count:
                chosen[j] = pair
    return chosen


def aksk_requests(pairs: list[tuple[str, str]], port: int, path: str) -> list[str]:
    """Signed-request header lines, signed now (replayable inside the 15-minute date window)."""
    from csscert.signing import sign_request

    url = f"http://{harness.HOST}:{port}{path}"
    out = []
    for access, secret in pairs:
        headers = sign_request(access, secret, "GET", url, {"Content-Type": "application/json"})
        out.append("\t".join(f"{k}: {v}" for k, v in headers.items()))
    return out


def headers_of(line: str) -> dict[str, str]:
    return dict(field.split(": ", 1) for field in line.split("\t"))
