"""Sample the live server under load with py-spy: ``python bench/profile.py [--case token-200]``.

Starts ``csscert serve --workers 1`` on a fresh data dir, drives one case with wrk and records
the worker with ``py-spy record`` (collapsed stacks, plus a flame graph SVG). Prints the
functions with the most samples, self and inclusive. Needs py-spy (the ``bench`` extra) and
root or ptrace permission.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from run import tampered

RESULTS = Path(__file__).resolve().parent / "results" / "tmp"  # git-ignored


def headers_for(case: str, fixture: harness.Fixture, port: int) -> dict[str, str]:
    if case == "aksk-200":
        return harness.signed_headers(fixture, port)
    return {
        "token-200": {"X-Auth-Token": fixture.token},
        "token-304": {"X-Auth-Token": fixture.token, "If-None-Match": fixture.etag},
        "invalid-401": {"X-Auth-Token": tampered(fixture.token)},
    }[case]


def summarize(raw: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            if "csscert/" in frame or "granian/" in frame or "asyncio/" in frame or "uvloop" in frame:
                inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "incl %  function (csscert, granian and event-loop frames)"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--case", default="token-200", choices=["token-200", "aksk-200", "token-304", "invalid-401"]
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include native (Rust/C) frames")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    harness.ensure_tools(("wrk",))
    workdir = Path(tempfile.mkdtemp(prefix="csscert-profile-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"profile-{args.case}.txt"
    svg = RESULTS / f"profile-{args.case}.svg"
    try:
        fixture = harness.bootstrap(workdir)
        usable = sorted(os.sched_getaffinity(0))
        server_cpus, load_cpus = (usable[:1], usable[1:]) if len(usable) > 1 else (None, None)
        server = harness.Csscert(fixture.data_dir, 1, server_cpus, workdir / "serve.log")
        server.start()
        try:
            server.wait_ready(fixture.path, {"X-Auth-Token": fixture.token})
            worker = server.worker_pids()[0]
            headers = headers_for(args.case, fixture, server.port)
            harness.run_wrk(server.port, fixture.path, headers, args.connections, 2, 1, load_cpus)
            record = [py_spy, "record", "--pid", str(worker), "--rate", str(args.rate),
                      "--duration", str(args.duration), "--nonblocking"]  # fmt: skip
            if args.native:
                record.append("--native")
            load = threading.Thread(
                target=harness.run_wrk,
                args=(server.port, fixture.path, headers, args.connections, args.duration + 2, 1, load_cpus),
            )
            load.start()
            subprocess.run(
                [*record, "--format", "raw", "--output", str(raw)], check=True, capture_output=True
            )
            load.join()
            load = threading.Thread(
                target=harness.run_wrk,
                args=(server.port, fixture.path, headers, args.connections, args.duration + 2, 1, load_cpus),
            )
            load.start()
            subprocess.run([*record, "--format", "flamegraph", "--output", str(svg)], check=True,
                           capture_output=True)  # fmt: skip
            load.join()
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(summarize(raw, args.top))
    print(f"\ncollapsed stacks: {raw}\nflame graph: {svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
