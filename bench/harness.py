"""Building blocks of the benchmark: tools, a bootstrapped data dir, servers, wrk, RSS sampling.

Everything talks to loopback addresses only. Servers are started as process groups and are
stopped by their own process-group id, never by name.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CSSCERT = [sys.executable, "-m", "csscert"]


# -- tools & machine ----------------------------------------------------------------------


def ensure_tools(names: Sequence[str] = ("nginx", "wrk")) -> None:
    """Install Debian's nginx and wrk when they are missing (needs root, as on the dev machines)."""
    missing = [name for name in names if find_tool(name) is None]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    still = [name for name in names if find_tool(name) is None]
    if still:
        raise SystemExit(f"could not install {' '.join(still)}")


def check_python() -> None:
    """The bench drives the csscert and granian of the interpreter running it: the project's venv."""
    if not _importable("csscert") or not Path(sys.executable).with_name("granian").exists():
        raise SystemExit(
            f"{sys.executable} has no csscert/granian: run the bench with the project's venv, e.g. "
            "python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python bench/run.py"
        )


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def _first_line(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    import granian

    loops = [name for name in ("rloop", "uvloop") if _importable(name)]
    return {
        "cpu_model": model,
        "cores_online": os.cpu_count(),
        "cores_usable": sorted(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "granian": granian.__version__,
        "event_loops_installed": loops,
        "nginx": _first_line([find_tool("nginx") or "nginx", "-v"]),
        "wrk": _first_line([find_tool("wrk") or "wrk", "-v"]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}
    env["CSSCERT_LOG_LEVEL"] = "WARNING"
    env.update(extra or {})
    return env


def taskset(cpus: Sequence[int] | None) -> list[str]:
    if not cpus or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cpus)]


# -- plain HTTP (one request, for fixtures and checks) ------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def request(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Reply:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


# -- csscert ------------------------------------------------------------------------------


@dataclass
class Fixture:
    """A served-once data dir and the credentials a client needs."""

    data_dir: Path
    project_id: str
    token: str
    access_key: str
    secret_key: str
    pem: bytes
    etag: str

    @property
    def path(self) -> str:
        return f"/v1.0/{self.project_id}/cer/download"


class Csscert:
    """``csscert serve`` as a process group (granian main process + workers)."""

    def __init__(
        self,
        data_dir: Path,
        workers: int,
        cpus: Sequence[int] | None,
        log: Path,
        serve_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})  # CSSCERT_* settings on top of a clean environment
        self.workers = workers
        self.cpus = list(cpus) if cpus else None
        self.log = log
        self.serve_args = list(serve_args)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        command = [
            *taskset(self.cpus),
            *CSSCERT,
            "--data-dir",
            str(self.data_dir),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *self.serve_args,
        ]
        with open(self.log, "ab") as log:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(self.env),
                start_new_session=True,
            )

    def wait_ready(
        self, path: str = "/healthz", headers: dict[str, str] | None = None, timeout: float = 60.0
    ) -> float:
        """Seconds from process start to the first 200 on ``path``."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"csscert serve exited with {self.proc.returncode}; see {self.log}")
            try:
                if request(self.port, path, headers, timeout=2.0).status == 200:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"csscert did not answer 200 on {path} within {timeout}s; see {self.log}")

    def worker_pids(self) -> list[int]:
        """The granian worker processes (children of the serve process that run the app)."""
        assert self.proc is not None
        return [pid for pid in descendants(self.proc.pid) if "resource_tracker" not in cmdline(pid)]

    def all_pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None


def bootstrap(workdir: Path, env: dict[str, str] | None = None) -> Fixture:
    """First ``csscert serve`` on a new data dir (creates project, CA, user, AK/SK), then a token.
    ``env``: CSSCERT_* settings for the server and the CLI (e.g. a database URL)."""
    data_dir = workdir / "data"
    server = Csscert(data_dir, 1, None, workdir / "bootstrap.log", env=env)
    server.start()
    try:
        server.wait_ready()
        creds = json.loads((data_dir / "bootstrap-credentials.json").read_text())
        token = subprocess.run(
            [
                *CSSCERT,
                "--data-dir",
                str(data_dir),
                "token",
                "issue",
                "--user",
                creds["user_name"],
                "--project",
                creds["project_id"],
            ],
            check=True,
            capture_output=True,
            text=True,
            env=clean_env(env),
        ).stdout.strip()
        path = f"/v1.0/{creds['project_id']}/cer/download"
        reply = request(server.port, path, {"X-Auth-Token": token})
        if reply.status != 200:
            raise RuntimeError(f"bootstrap download failed: {reply.status} {reply.body[:200]!r}")
        return Fixture(
            data_dir,
            creds["project_id"],
            token,
            creds["access_key"],
            creds["secret_key"],
            reply.body,
            reply.headers["etag"],
        )
    finally:
        server.stop()


def signed_headers(fixture: Fixture, port: int) -> dict[str, str]:
    """An SDK-HMAC-SHA256 request signed now, to be replayed inside the date window."""
    from csscert.signing import sign_request

    url = f"http://{HOST}:{port}{fixture.path}"
    signed = sign_request(
        fixture.access_key, fixture.secret_key, "GET", url, {"Content-Type": "application/json"}
    )
    return dict(signed)


# -- nginx --------------------------------------------------------------------------------

_NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    open_file_cache max=16 inactive=60s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen {host}:{port} backlog=1024;
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """Debian's nginx, one worker, no access log, keep-alive: the same bytes at the same path."""

    def __init__(self, fixture: Fixture, workdir: Path, cpus: Sequence[int] | None) -> None:
        self.port = free_port()
        self.cpus = list(cpus) if cpus else None
        self.tmp = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        self.root = Path(tempfile.mkdtemp(prefix="csscert-bench-www-"))  # world-readable for the worker
        os.chmod(self.root, 0o755)
        target = self.root / fixture.path.lstrip("/")
        target.parent.mkdir(parents=True)
        for parent in [target.parent, *target.parent.parents]:
            if parent == self.root:
                break
            os.chmod(parent, 0o755)
        target.write_bytes(fixture.pem)
        os.chmod(target, 0o644)
        self.conf = self.tmp / "nginx.conf"
        self.conf.write_text(_NGINX_CONF.format(tmp=self.tmp, host=HOST, port=self.port, root=self.root))
        self.proc: subprocess.Popen[bytes] | None = None
        self.path = fixture.path
        self.etag = ""

    def start(self) -> None:
        nginx = find_tool("nginx") or "nginx"
        command = [
            *taskset(self.cpus),
            nginx,
            "-p",
            str(self.tmp),
            "-e",
            str(self.tmp / "error.log"),
            "-c",
            str(self.conf),
        ]
        with open(self.tmp / "stdout.log", "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.tmp / 'error.log').read_text()[-2000:]}")
            try:
                reply = request(self.port, self.path)
                if reply.status == 200:
                    self.etag = reply.headers["etag"]
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nginx did not start")

    def all_pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


class Ceiling:
    """bench/ceiling_app.py under the granian CLI: the Python server stack with no app work."""

    def __init__(self, fixture: Fixture, workdir: Path, workers: int, cpus: Sequence[int] | None) -> None:
        self.port = free_port()
        self.workers = workers
        self.cpus = list(cpus) if cpus else None
        self.body_file = workdir / "ceiling-body.pem"
        self.body_file.write_bytes(fixture.pem)
        self.log = workdir / f"ceiling-w{workers}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        granian = Path(sys.executable).with_name("granian")
        command = [
            *taskset(self.cpus), str(granian), "--interface", "rsgi", "--workers", str(self.workers),
            "--no-ws", "--host", HOST, "--port", str(self.port), "--log-level", "warning",
            "--working-dir", str(Path(__file__).resolve().parent), "ceiling_app:app",
        ]  # fmt: skip
        env = clean_env({"CEILING_BODY_FILE": str(self.body_file)})
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"granian (ceiling) exited; see {self.log}")
            try:
                if request(self.port, "/").status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("granian (ceiling) did not start")

    def all_pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


# -- processes ----------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by the processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class RssSampler:
    """Samples VmRSS of a fixed set of pids every ``interval`` seconds in a thread."""

    def __init__(self, pids: Sequence[int], interval: float = 0.5) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while True:
            row = {pid: kib for pid in self.pids if (kib := rss_kib(pid)) is not None}
            self.samples.append((time.monotonic() - start, row))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self) -> dict[int, float]:
        peaks: dict[int, int] = {}
        for _, row in self.samples:
            for pid, kib in row.items():
                peaks[pid] = max(peaks.get(pid, 0), kib)
        return {pid: round(kib / 1024, 1) for pid, kib in peaks.items()}


@contextmanager
def sampling(pids: Sequence[int], interval: float = 0.5) -> Iterator[RssSampler]:
    with RssSampler(pids, interval) as sampler:
        yield sampler


# -- wrk ----------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    raw: str = ""
    server_cpu_us_per_request: float | None = None  # CPU time of the server processes / requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "non_2xx_3xx": self.non_2xx_3xx,
            "socket_errors": self.socket_errors,
            "cpu_us_per_req": (
                None if self.server_cpu_us_per_request is None else round(self.server_cpu_us_per_request, 2)
            ),
        }


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors: dict[str, int] = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
    return WrkResult(total, rps, p50, p99, int(non[1]) if non else 0, errors, out)


def run_wrk(
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    threads: int,
    cpus: Sequence[int] | None,
    server_pids: Sequence[int] = (),
    script: Path | None = None,
    script_env: dict[str, str] | None = None,
) -> WrkResult:
    """One wrk run; with ``script`` (a Lua file, given ``script_env``) instead of fixed headers."""
    wrk = find_tool("wrk") or "wrk"
    command = [
        *taskset(cpus),
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(f"http://{HOST}:{port}{path}")
    env = {**os.environ, **(script_env or {})}
    cpu_before = cpu_seconds(server_pids)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, env=env)
    cpu_used = cpu_seconds(server_pids) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    if server_pids and result.requests:
        result.server_cpu_us_per_request = cpu_used * 1e6 / result.requests
    return result
