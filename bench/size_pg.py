"""The size benchmark on PostgreSQL: two hosts, one database.

A private cluster (PostgreSQL's own binaries, run as the ``postgres`` user like ``.ci/run``
does) holds one database; host A and host B are two ``csscert serve`` processes (1 worker each)
with separate data directories and the same master key. After a fill through host A's data dir:

* propagation: per trial, host B accepts a token (so B has a cached verdict to drop), host A
  revokes it (``DELETE /v3/auth/tokens``, answered 204 after the commit), then B is polled on
  one keep-alive connection until it answers 401; the delay is from A's 204 to B's 401;
* outage: client threads keep asking B for the download with a token B has already accepted
  ("cached") and with tokens it has never seen ("fresh": their revocation status needs the
  database) while the database is stopped (``pg_ctl stop -m fast``), started again, then frozen
  (SIGSTOP of every PostgreSQL process) and thawed. Reported per phase: answers by status, the
  longest wait, and how long after the database came back the first fresh token got its 200.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import size_fill
from harness import Csscert


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def ctl(self, *args: str) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.ctl("-w", "-o", options, "start")

    def stop(self) -> None:
        self.ctl("-w", "-m", "fast", "stop")

    def processes(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        return [postmaster, *harness.descendants(postmaster)]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
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
def cluster() -> Iterator[Cluster]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise SystemExit(
            "PostgreSQL server binaries are missing (apt-get install postgresql), or --skip-postgres"
        )
    root = Path(tempfile.mkdtemp(prefix="csscert-size-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    pg = Cluster(found[-1].parent, root, harness.free_port())
    try:
        pg._as_postgres(str(pg.bin / "initdb"), "-D", str(pg.data), "-A", "trust", "-U", "postgres")
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            for pid in pg.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(Exception):
            pg.ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


class Client:
    """One keep-alive HTTP connection (reconnects after an error)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, headers: dict[str, str]) -> int:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(harness.HOST, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.close()
                return resp.status
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run(args: argparse.Namespace, users: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    print(f"\n== PostgreSQL: two hosts, one database, {users} users", flush=True)
    with cluster() as pg:
        penv = {**env, "CSSCERT_DATABASE_URL": pg.url}
        filled = size_fill.fill(workdir / "pg-a", users, args.revocations, penv, reuse=False)
        b_data = workdir / "pg-b" / "data"
        b_data.mkdir(parents=True)
        b_data.chmod(0o700)
        shutil.copy2(filled.data_dir / "master.key", b_data / "master.key")  # one key seals the shared data
        path = f"/v1.0/{filled.project_id}/cer/download"
        need = args.trials + 10_000
        tokens = size_fill.tokens(filled.data_dir, penv, filled.project_id, need, users)
        hosts = [
            Csscert(d, 1, None, workdir / f"pg-{name}.log", env=penv)
            for name, d in (("a", filled.data_dir), ("b", b_data))
        ]
        for host in hosts:
            host.start()
        try:
            for host in hosts:
                host.wait_ready(path, {"X-Auth-Token": tokens[0]}, timeout=300)
            out: dict[str, Any] = {"users": users, "revocations": args.revocations}
            out["propagation"] = propagation(hosts[0], hosts[1], path, tokens[1 : 1 + args.trials])
            if args.outage > 0:
                out["outage"] = outage(pg, hosts[1], path, tokens[0], tokens[1 + args.trials :], args.outage)
        finally:
            for host in hosts:
                host.stop()
    return out


def propagation(a: Csscert, b: Csscert, path: str, tokens: list[str]) -> dict[str, Any]:
    on_a, on_b = Client(a.port), Client(b.port)
    delays: list[float] = []
    polls: list[int] = []
    for token in tokens:
        headers = {"X-Auth-Token": token}
        if on_b.call("GET", path, headers) != 200 or on_a.call("GET", path, headers) != 200:
            raise RuntimeError("a new token was not accepted by both hosts")
        status = on_a.call("DELETE", "/v3/auth/tokens", {**headers, "X-Subject-Token": token})
        acked = time.perf_counter()
        if status != 204:
            raise RuntimeError(f"revocation on host A answered {status}")
        count = 0
        while True:
            count += 1
            status = on_b.call("GET", path, headers)
            if status == 401:
                delays.append(1000 * (time.perf_counter() - acked))
                break
            if status != 200 or time.perf_counter() - acked > 10:
                raise RuntimeError(f"host B answered {status} ({time.perf_counter() - acked:.1f} s after)")
        polls.append(count)
        time.sleep(0.05)
    on_a.close()
    on_b.close()
    result = {
        "trials": len(delays),
        "p50_ms": round(statistics.median(delays), 2),
        "p99_ms": round(sorted(delays)[min(len(delays) - 1, int(0.99 * len(delays)))], 2),
        "max_ms": round(max(delays), 2),
        "delays_ms": [round(d, 2) for d in delays],
        "polls": polls,
    }
    print(
        f"  propagation A -> B: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max "
        f"{result['max_ms']} ms"
    )
    return result


def outage(
    pg: Cluster, b: Csscert, path: str, cached: str, fresh: list[str], seconds: float
) -> dict[str, Any]:
    records: list[tuple[float, str, int, float]] = []  # start, kind, status (0: error), seconds
    stop = threading.Event()
    start = time.perf_counter()
    fresh_iter = iter(fresh)
    lock = threading.Lock()

    def client(kind: str) -> None:
        conn = Client(b.port)
        while not stop.is_set():
            if kind == "cached":
                token = cached
            else:
                with lock:
                    token = next(fresh_iter, cached)
            t0 = time.perf_counter()
            try:
                status = conn.call("GET", path, {"X-Auth-Token": token})
            except (OSError, http.client.HTTPException):
                status = 0
            t1 = time.perf_counter()
            records.append((t0 - start, kind, status, t1 - t0))
            time.sleep(0.005)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in ("cached", "fresh", "fresh")]
    marks: list[tuple[str, float]] = []

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter() - start))

    settle = max(1.0, min(3.0, seconds))  # before, between and after the outages
    for thread in threads:
        thread.start()
    mark("running")
    time.sleep(settle)
    mark("stopped")
    pg.stop()
    time.sleep(seconds)
    pg.start()
    mark("restarted")
    time.sleep(settle)
    mark("frozen")
    with pg.frozen():
        time.sleep(seconds)
    mark("thawed")
    time.sleep(settle)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    mark("end")
    phases = []
    for (name, t0), (_, t1) in itertools.pairwise(marks):
        rows = [r for r in records if t0 <= r[0] < t1]
        by_status: dict[str, int] = {}
        for _, kind, status, _ in rows:
            key = f"{kind} {status or 'error'}"
            by_status[key] = by_status.get(key, 0) + 1
        first_fresh = next((r[0] - t0 for r in rows if r[1] == "fresh" and r[2] == 200), None)
        phases.append(
            {
                "phase": name,
                "seconds": round(t1 - t0, 2),
                "answers": dict(sorted(by_status.items())),
                "max_wait_ms": round(1000 * max((r[3] for r in rows), default=0), 1),
                "first_fresh_200_after_ms": None if first_fresh is None else round(1000 * first_fresh, 1),
            }
        )
    result = {
        "seconds_each": seconds,
        "phases": phases,
        "max_wait_ms": round(1000 * max((r[3] for r in records), default=0), 1),
        "status_500": sum(1 for r in records if r[2] >= 500 and r[2] != 503),
        "errors": sum(1 for r in records if r[2] == 0),
    }
    print(f"  outage: max wait {result['max_wait_ms']} ms, 5xx other than 503: {result['status_500']}")
    for phase in phases:
        print(f"    {phase}")
    return result
