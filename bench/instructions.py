"""Instructions per request of the whole server worker, counted by callgrind: a load-proof measure.

``python bench/instructions.py`` starts the real server under ``valgrind --tool=callgrind``
(``--trace-children=yes``, so the granian worker is counted), drives each case with wrk
(keep-alive, ``--connections``) for ``--duration`` seconds, and divides the worker's
instruction count by the requests wrk completed. Counters are zeroed after a warm-up and
dumped after each case with ``callgrind_control``. The number covers user space only
(granian's Rust, CPython, our code, libc); system calls are not counted. Under valgrind the
threads of a process run one at a time, so batching differs a little from a native run;
the point is a number that does not move with the machine's load, for before/after
comparisons of code or of granian options.

Variants: ``--granian "--loop uvloop"`` (repeatable) runs the granian CLI itself on the same
app factory (``csscert.api.app:create_app``) with those options, instead of ``csscert serve``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from run import tampered


def case_headers(name: str, fixture: harness.Fixture, port: int) -> dict[str, str]:
    return {
        "token-200": lambda: {"X-Auth-Token": fixture.token},
        "aksk-200": lambda: harness.signed_headers(fixture, port),
        "token-304": lambda: {"X-Auth-Token": fixture.token, "If-None-Match": fixture.etag},
        "invalid-401": lambda: {"X-Auth-Token": tampered(fixture.token)},
    }[name]()


def by_object(dump: Path) -> dict[str, int]:
    """Exclusive instruction counts per shared object in a callgrind dump."""
    names: dict[str, str] = {}
    counts: collections.Counter[str] = collections.Counter()
    current = "?"
    skip_next = False
    ref = re.compile(r"\((\d+)\)(?: (.*))?")

    def resolve(text: str) -> str:
        match = ref.match(text)
        if match is None:
            return text
        if match[2] is not None:
            names[match[1]] = match[2]
        return names.get(match[1], text)

    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("ob="):
            current = resolve(line[3:])
        elif line.startswith("cob="):
            resolve(line[4:])
        elif line.startswith("calls="):
            skip_next = True  # the next cost line is the call's inclusive cost
        elif line[:1].isdigit() or line[:1] in ("+", "-", "*"):
            if skip_next:
                skip_next = False
                continue
            parts = line.split()
            if len(parts) >= 2:
                counts[current] += int(parts[1])
    out: dict[str, int] = {}
    for obj, count in counts.items():
        label = Path(obj).name
        key = (
            "cpython"
            if label.startswith("libpython")
            else "granian"
            if label.startswith("_granian")
            else "libc"
            if label.startswith(("libc.", "ld-linux"))
            else "other"
        )
        out[key] = out.get(key, 0) + count
    return out


class Server:
    def __init__(self, fixture: harness.Fixture, variant: str | None, workdir: Path) -> None:
        self.port = harness.free_port()
        self.out = workdir / f"cg-{self.port}"
        self.out.mkdir()
        settings_env = {"CSSCERT_DATA_DIR": str(fixture.data_dir), "CSSCERT_PORT": str(self.port)}
        if variant is None:
            target = [
                *harness.CSSCERT,
                "--data-dir",
                str(fixture.data_dir),
                "serve",
                "--port",
                str(self.port),
            ]
        else:
            granian = Path(sys.executable).with_name("granian")
            target = [
                str(granian), "--interface", "rsgi", "--workers", "1", "--no-ws", "--factory",
                "--host", harness.HOST, "--port", str(self.port), *shlex.split(variant),
                "csscert.api.app:create_app",
            ]  # fmt: skip
        command = [
            "valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={self.out}/cg.%p", *target,
        ]  # fmt: skip
        self.log = workdir / f"server-{self.port}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=harness.clean_env(settings_env),
                start_new_session=True,
            )  # fmt: skip

    def wait(self, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log}")
            try:
                if harness.request(self.port, "/healthz", timeout=10).status == 200:
                    break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError("server did not start under valgrind")
        workers = [
            p for p in harness.descendants(self.proc.pid) if "resource_tracker" not in harness.cmdline(p)
        ]
        if not workers:
            raise RuntimeError("no worker process found")
        return workers[-1]

    def stop(self) -> None:
        harness.stop_group(self.proc)


def control(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, timeout=120)


def newest_dump(directory: Path, pid: int, seen: set[Path]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fresh = [p for p in directory.glob(f"cg.{pid}.*") if p not in seen]
        if fresh and "totals:" in fresh[0].read_text(errors="replace"):
            seen.add(fresh[0])
            return fresh[0]
        time.sleep(0.5)
    raise RuntimeError("callgrind did not write a dump")


def measure(fixture: harness.Fixture, variant: str | None, cases: list[str], args: argparse.Namespace,
            workdir: Path) -> dict[str, Any]:  # fmt: skip
    server = Server(fixture, variant, workdir)
    results: dict[str, Any] = {}
    try:
        worker = server.wait()
        seen: set[Path] = set()
        for name in cases:
            headers = case_headers(name, fixture, server.port)
            harness.run_wrk(server.port, fixture.path, headers, args.connections, 3, 1, None)
            control("-z", worker)
            result = harness.run_wrk(
                server.port, fixture.path, headers, args.connections, args.duration, 1, None
            )
            control("-d", worker)
            dump = newest_dump(server.out, worker, seen)
            total = next(int(x.split()[1]) for x in dump.read_text().splitlines() if x.startswith("totals:"))
            parts = {k: round(v / result.requests) for k, v in by_object(dump).items()}
            results[name] = {"instructions_per_request": round(total / result.requests), "by_object": parts,
                             "requests": result.requests}  # fmt: skip
            print(f"  {name:12s} {total / result.requests:9,.0f} instructions/request  {parts}", flush=True)
    finally:
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=["token-200", "aksk-200", "token-304", "invalid-401"])
    parser.add_argument("--granian", action="append", default=None, help="granian CLI options (a variant)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of wrk per case (default 8)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install valgrind)")
    harness.ensure_tools(("wrk",))
    workdir = Path(tempfile.mkdtemp(prefix="csscert-instr-"))
    out: dict[str, Any] = {}
    try:
        fixture = harness.bootstrap(workdir)
        for variant in args.granian or [None]:
            label = "csscert serve" if variant is None else f"granian {variant}"
            print(f"{label}:", flush=True)
            out[label] = measure(fixture, variant, args.cases, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
