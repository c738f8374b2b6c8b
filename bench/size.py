"""csscert at size: ``.venv/bin/python bench/size.py`` (the project's venv; see README, "At size").

For each N of ``--sizes`` (default 10 k, 100 k, 1 M):

* fills a data dir (SQLite) through ``csscert user import FILE --credentials-out FILE``: N users
  with one AK/SK each, plus ``--revocations`` live token revocations (bulk helper, see
  size_fill.py); cached under bench/results/tmp/ with ``--keep`` (each run works on a copy, so
  the cache stays at exactly N);
* times ``csscert token issue`` (the CLI, a new process each time) and the start of
  ``csscert serve`` (1 worker) to its first 200 on a token download;
* with 1 worker pinned to its own core (wrk and the writer on the other), drives four download
  cases with wrk at ``--connections`` for ``--duration`` s each, without writes and while a
  separate writer process (size_writer.py) writes 20 and 200 times per second (alternately a
  token revocation and a user create): ``token-one`` / ``aksk-one`` (one identity), and
  ``token-many`` / ``aksk-many`` (rotating over ``--identities`` distinct users' tokens / access
  keys, rotate.lua);
* samples the worker's RSS from /proc throughout, then a ``--soak`` s run (token-many while
  ``--soak-writes`` writes/s run) for flatness.

Then, unless ``--skip-postgres``, on a private PostgreSQL cluster (size_pg.py): two servers with
separate data dirs and one database, the delay until host B refuses a token revoked on host A,
over ``--trials`` trials, and a short outage run (database stopped, then frozen).

Rate limits are turned off for every server and command (``CSSCERT_RATE_LIMITS=off``; a
setting csscert ignores where it does not exist). Results: bench/results/size-latest.json and
.md, and the README table between the size markers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import size_fill
import size_report
from harness import Csscert
from run import CpuPlan, cpu_plan

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CACHE = RESULTS / "tmp"
ENV = {"CSSCERT_RATE_LIMITS": "off"}  # the benchmark measures the read model, not a limiter
CASES = ("token-one", "aksk-one", "token-many", "aksk-many")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Writer:
    """size_writer.py as a process: ready after minting, then writes at ``rate`` for ``seconds``."""

    def __init__(
        self, data_dir: Path, project: str, rate: float, seconds: float, cpus: list[int] | None,
        env: dict[str, str],
    ) -> None:  # fmt: skip
        command = [
            *harness.taskset(cpus), sys.executable, str(BENCH / "size_writer.py"),
            "--data-dir", str(data_dir), "--project", project,
            "--rate", str(rate), "--seconds", str(seconds),
        ]  # fmt: skip
        if "CSSCERT_DATABASE_URL" in env:
            command += ["--database-url", env["CSSCERT_DATABASE_URL"]]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=harness.clean_env(env), start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"the writer did not start: {line!r}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=120)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the writer failed ({self.proc.returncode})")
        return dict(json.loads(out.strip().splitlines()[-1]))


class SizeRun:
    """One N: fill, CLI and start-up times, downloads with and without writes, RSS."""

    def __init__(self, args: argparse.Namespace, users: int, workdir: Path) -> None:
        self.args = args
        self.users = users
        self.workdir = workdir
        self.plan: CpuPlan = cpu_plan(1, not args.no_pin)
        self.requests: dict[str, Path] = {}

    def run(self) -> dict[str, Any]:
        args, n = self.args, self.users
        print(f"\n== N = {n} users ({args.revocations} revocations); {self.plan.describe()}", flush=True)
        cached = CACHE / f"size-{n}-r{args.revocations}"
        root = cached if args.keep else self.workdir / f"size-{n}"
        filled = size_fill.fill(root, n, args.revocations, ENV, reuse=args.keep)
        if filled.reused:
            print(f"  reusing the filled data dir in {cached}", flush=True)
        work = self.workdir / f"work-{n}"
        if args.keep:  # the cache stays at exactly N: the writers' users go into a copy
            shutil.copytree(filled.data_dir, work / "data")
        else:
            work = filled.root
        self.filled, self.data_dir = filled, work / "data"
        out: dict[str, Any] = {
            "users": n,
            "revocations": args.revocations,
            "fill": {
                "reused_cache": filled.reused,
                "import_seconds": filled.import_seconds,
                "revocations_seconds": filled.revocation_seconds,
                "database_mib": round((self.data_dir / "csscert.db").stat().st_size / 2**20, 1),
            },
        }
        out["token_issue"] = self.token_issue()
        self.token = self.issue(filled.bootstrap_user)
        out["startup"] = self.startups()
        out.update(self.load())
        return out

    # -- CLI and start-up --------------------------------------------------------------

    def issue(self, user: str) -> str:
        return size_fill.cli(
            self.data_dir, ENV, "token", "issue", "--user", user, "--project", self.filled.project_id
        ).strip()

    def token_issue(self) -> dict[str, Any]:
        times = []
        for i in range(self.args.issues):
            user = size_fill.user_name((self.users * (i + 1)) // (self.args.issues + 1))
            started = time.perf_counter()
            self.issue(user)
            times.append(time.perf_counter() - started)
        result = {"runs": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3)}
        print(f"  csscert token issue: {result}", flush=True)
        return result

    def server(self, name: str) -> Csscert:
        return Csscert(self.data_dir, 1, self.plan.server, self.workdir / f"{name}-{self.users}.log", env=ENV)

    def startups(self) -> dict[str, Any]:
        path = f"/v1.0/{self.filled.project_id}/cer/download"
        times = []
        for _ in range(self.args.starts):
            server = self.server("start")
            server.start()
            try:
                times.append(server.wait_ready(path, {"X-Auth-Token": self.token}, timeout=300))
            finally:
                server.stop()
        result = {"runs": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3)}
        print(f"  start to first 200: {result}", flush=True)
        return result

    # -- downloads ---------------------------------------------------------------------

    def prepare(self, port: int) -> None:
        """The request files wrk rotates over (AK/SK ones are signed again per run: the date window)."""
        k = min(self.args.identities, self.users)
        lines = {
            "token-one": [f"X-Auth-Token: {self.token}"],
            "token-many": size_fill.token_requests(self.data_dir, ENV, self.filled.project_id, k, self.users),
        }
        for case, text in lines.items():
            self.requests[case] = self.workdir / f"{case}-{self.users}.txt"
            self.requests[case].write_text("\n".join(text) + "\n")
        self.pairs = {
            "aksk-one": [(self.filled.access_key, self.filled.secret_key())],
            "aksk-many": size_fill.sample_credentials(self.filled.credentials, k),
        }
        self.port = port

    def request_file(self, case: str) -> Path:
        if case.startswith("aksk"):
            lines = size_fill.aksk_requests(self.pairs[case], self.port, self.path)
            self.requests[case] = self.workdir / f"{case}-{self.users}.txt"
            self.requests[case].write_text("\n".join(lines) + "\n")
        return self.requests[case]

    @property
    def path(self) -> str:
        return f"/v1.0/{self.filled.project_id}/cer/download"

    def drive(
        self, server: Csscert, case: str, rate: float, seconds: float
    ) -> tuple[harness.WrkResult, dict[str, Any] | None]:
        requests = self.request_file(case)
        first = requests.read_text().splitlines()[0]
        check = harness.request(server.port, self.path, size_fill.headers_of(first))
        if check.status != 200 or not check.body.startswith(b"-----BEGIN CERTIFICATE"):
            raise RuntimeError(f"{case}: expected 200 with the PEM, got {check.status}: {check.body[:300]!r}")
        writer = None
        if rate > 0:
            writer = Writer(self.data_dir, self.filled.project_id, rate, seconds, self.plan.load, ENV)
            writer.go()
        try:
            result = harness.run_wrk(
                server.port, self.path, {}, self.args.connections, seconds, self.plan.threads,
                self.plan.load, server.all_pids(), script=BENCH / "rotate.lua",
                script_env={"BENCH_REQUESTS": str(requests)},
            )  # fmt: skip
        finally:
            written = writer.result() if writer is not None else None
        return result, written

    def load(self) -> dict[str, Any]:
        args = self.args
        server = self.server("serve")
        server.start()
        try:
            server.wait_ready(self.path, {"X-Auth-Token": self.token}, timeout=300)
            worker = server.worker_pids()[0]
            self.prepare(server.port)
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {c: {} for c in args.cases}
            with harness.sampling([worker], 0.25) as sampler:
                for case in args.cases:
                    self.warm_up(server, case)
                for _ in range(args.rounds):
                    for case in args.cases:
                        for rate in args.writes:
                            result, written = self.drive(server, case, rate, args.duration)
                            entry = {**result.as_dict(), "writer": written}
                            entry["valid"] = result.non_2xx_3xx == 0 and not any(
                                v for k, v in result.socket_errors.items() if k != "connect"
                            )
                            runs[case].setdefault(f"{rate:g}", []).append(entry)
                            w = f", writer {written['rate_done']}/s" if written else ""
                            print(
                                f"  {case} writes {rate:g}/s: {result.rps:.0f} req/s p99 "
                                f"{result.p99_ms:.2f} ms{w}{'' if entry['valid'] else ' INVALID'}",
                                flush=True,
                            )
            peak = sampler.peak_mib().get(worker)
            soak = self.soak(server, worker) if args.soak > 0 else None
        finally:
            server.stop()
        return {"downloads": summarize(runs), "rss_peak_mib": peak, "soak": soak}

    def warm_up(self, server: Csscert, case: str) -> None:
        """Until every identity of the case was asked for at least twice (each first request is
        a cache miss: a query, and for AK/SK a secret to unseal), so no measured run pays for
        filling the caches; at most a minute."""
        identities = len(self.request_file(case).read_text().splitlines())
        served, deadline = 0, time.monotonic() + 60
        while served < 2 * identities or served == 0:
            result, _ = self.drive(server, case, 0, self.args.warmup)
            served += result.requests
            if time.monotonic() > deadline:
                print(f"  warm-up of {case} stopped after a minute ({served} requests)", flush=True)
                break

    def soak(self, server: Csscert, worker: int) -> dict[str, Any]:
        args = self.args
        case = "token-many" if "token-many" in args.cases else args.cases[0]
        print(f"  soak: {case} for {args.soak:g} s with {args.soak_writes:g} writes/s ...", flush=True)
        with harness.sampling([worker], 0.5) as sampler:
            result, written = self.drive(server, case, args.soak_writes, args.soak)
        series = [(t, row[worker]) for t, row in sampler.samples if worker in row]
        window = min(5.0, args.soak / 6)
        end = series[-1][0]
        first = statistics.median(k for t, k in series if t <= window)
        last = statistics.median(k for t, k in series if t >= end - window)
        out = {
            "case": case, "seconds": args.soak, "writes_per_s": args.soak_writes,
            "wrk": result.as_dict(), "writer": written,
            "start_mib": round(first / 1024, 1), "end_mib": round(last / 1024, 1),
            "peak_mib": round(max(k for _, k in series) / 1024, 1),
            "growth_pct": round(100 * (last - first) / first, 2),
        }  # fmt: skip
        print(f"  soak RSS {out['start_mib']} -> {out['end_mib']} MiB, peak {out['peak_mib']}", flush=True)
        return out


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Medians over rounds per case and write rate, and the ratios the targets use."""
    out: dict[str, Any] = {}
    for case, by_rate in runs.items():
        out[case] = {}
        for rate, entries in by_rate.items():
            row: dict[str, Any] = {"valid": all(e["valid"] for e in entries), "rounds": len(entries)}
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
                values = [e[key] for e in entries if e.get(key) is not None]
                row[key] = round(statistics.median(values), 3) if values else None
            writers = [e["writer"] for e in entries if e.get("writer")]
            if writers:
                row["writes_done_per_s"] = round(statistics.median(w["rate_done"] for w in writers), 1)
                row["write_errors"] = sum(w["errors"] for w in writers)
                row["write_ms_p99"] = max(w["write_ms_p99"] or 0 for w in writers)
            out[case][rate] = row
        base = out[case].get("0")
        for rate, row in out[case].items():
            if base and rate != "0" and base["p99_ms"] and base["rps"]:
                row["p99_vs_no_writes"] = round(row["p99_ms"] / base["p99_ms"], 3)
                row["rps_vs_no_writes"] = round(row["rps"] / base["rps"], 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="user counts, comma-separated")
    parser.add_argument("--revocations", type=int, default=100_000, help="live token revocations (100000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per case (2)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over cases and write rates (1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--writes", default="0,20,200", help="writer rates per second (0,20,200)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"download cases ({','.join(CASES)})")
    parser.add_argument("--identities", type=int, default=10_000, help="distinct users of the *-many cases")
    parser.add_argument("--soak", type=float, default=60.0, help="RSS flatness run, seconds; 0 skips (60)")
    parser.add_argument("--soak-writes", type=float, default=200.0, help="writes/s during the soak (200)")
    parser.add_argument("--starts", type=int, default=3, help="server starts timed per N (3)")
    parser.add_argument("--issues", type=int, default=3, help="'csscert token issue' runs per N (3)")
    parser.add_argument("--skip-postgres", action="store_true", help="skip the two-host PostgreSQL part")
    parser.add_argument("--postgres-users", type=int, default=None, help="users on PostgreSQL (smallest N)")
    parser.add_argument("--trials", type=int, default=20, help="revocation propagation trials (20)")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds stopped and frozen; 0 skips (3)")
    parser.add_argument(
        "--keep", action="store_true", help="reuse/keep filled data dirs in bench/results/tmp/"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the server and wrk to separate cores"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "size-latest", help="results path without suffix"
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.writes = [float(s) for s in args.writes.split(",") if s]
    args.cases = [c for c in args.cases.split(",") if c]
    if unknown := set(args.cases) - set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if 0 not in args.writes:
        args.writes.insert(0, 0.0)

    harness.check_python()
    harness.ensure_tools(("wrk",))
    machine = harness.machine_info()
    print(
        f"machine: {machine['cpu_model']}, {machine['cores_online']} cores, load "
        f"{machine['load_average_at_start']}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="csscert-size-"))
    started = time.monotonic()
    loads: list[list[float]] = []
    try:
        sizes = []
        for n in args.sizes:
            loads.append([round(x, 2) for x in os.getloadavg()])
            sizes.append(SizeRun(args, n, workdir).run())
        postgres = None
        if not args.skip_postgres:
            import size_pg

            loads.append([round(x, 2) for x in os.getloadavg()])
            postgres = size_pg.run(args, args.postgres_users or min(args.sizes), workdir, ENV)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "machine": machine,
        "load_average_per_part": loads,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": {**ENV, "note": "rate limits off for every server and command (ignored if unknown)"},
        "revocation_fill": "bulk: SQLAlchemy insert into revocations (expiry 1-23 h ahead) with matching "
        "changes rows, 10 000 per write transaction of the store (SqlStore._write)",
        "sizes": sizes,
        "postgres": postgres,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    result["targets"] = size_report.targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = size_report.markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print("\n" + text)
    print(f"wrote {args.out.with_suffix('.json')} and .md ({result['wall_seconds']:.0f} s)")
    if not args.no_readme and args.out == RESULTS / "size-latest" and size_report.update_readme(result):
        print("updated the 'At size' table in README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
