"""In-process micro-benchmark of the hot path: ``App.handle`` per case.

``python bench/micro.py`` bootstraps a data dir (one real ``csscert serve``), then builds the
app exactly as a granian worker does (``App(Service(Settings(...)))``) and calls
``App.handle`` for each benchmark case, driving the coroutine directly (the download path
never awaits). The server and the network are left out on purpose: these numbers move only
when the Python code of the hot path changes, so they are a far steadier before/after
measure than requests per second on a busy machine.

* default: CPU time per call (``time.thread_time``, so time spent descheduled by other load
  does not count), best and median of ``--repeat`` runs of ``--number`` calls;
* ``--instructions``: instructions per call counted by valgrind's callgrind (needs
  valgrind; slow but independent of the machine's load), collected only inside the timed
  loop (``--toggle-collect`` on the ``functools.reduce`` that drives it);
* ``--profile``: a pyinstrument profile of each case.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from run import tampered

PORT = 8080


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the handler awaited something")


def cases(fixture: harness.Fixture) -> dict[str, tuple[dict[str, str], int]]:
    """name -> (request headers as granian hands them over: lower-case names; expected status)."""
    signed = {k.lower(): v for k, v in harness.signed_headers(fixture, PORT).items()}
    host = {"host": f"{harness.HOST}:{PORT}", "user-agent": "wrk", "accept": "*/*"}
    return {
        "token-200": ({**host, "x-auth-token": fixture.token}, 200),
        "aksk-200": ({"user-agent": "wrk", "accept": "*/*", **signed}, 200),
        "token-304": ({**host, "x-auth-token": fixture.token, "if-none-match": fixture.etag}, 304),
        "invalid-401": ({**host, "x-auth-token": tampered(fixture.token)}, 401),
        "no-credentials-401": (host, 401),
    }


def make_calls(data_dir: Path, path: str, specs: dict[str, tuple[dict[str, str], int]]) -> dict[str, Any]:
    """One ready-to-time callable per case, each checked once for its expected status."""
    from csscert.api.app import App
    from csscert.api.request import Request
    from csscert.api.wire import new_request_id
    from csscert.service import Service
    from csscert.settings import Settings

    app = App(Service(Settings(data_dir=data_dir, port=PORT, log_level="WARNING")))
    loop = asyncio.new_event_loop()
    calls: dict[str, Callable[[], Any]] = {}
    for name, (headers, expect) in specs.items():
        # Warm the read model's caches on a real loop (a miss is a query off the loop); the timed
        # calls below are warm requests, which never suspend, so they run without a loop.
        request = Request("GET", path, "", headers, b"", "http", new_request_id())
        loop.run_until_complete(app.handle(request))

        def call(headers: dict[str, str] = headers) -> Any:
            # What a worker does per request: build the Request (with its id), then dispatch.
            return drive(app.handle(Request("GET", path, "", headers, b"", "http", new_request_id())))

        status, _, body = call()
        if status != expect:
            raise SystemExit(f"{name}: expected {expect}, got {status}: {body[:300]!r}")
        calls[name] = call
    return calls


def timed(call: Callable[[], Any], number: int) -> float:
    start = time.thread_time_ns()
    for _ in range(number):
        call()
    return (time.thread_time_ns() - start) / 1000 / number


def profile(name: str, call: Callable[[], Any], number: int) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(number):
        call()
    profiler.stop()
    print(f"===== {name}")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def child(spec_file: Path) -> None:
    """Run under callgrind: each case's loop inside one functools.reduce call (one dump each)."""
    spec = json.loads(spec_file.read_text())
    calls = make_calls(
        Path(spec["data_dir"]), spec["path"], {k: (v[0], v[1]) for k, v in spec["cases"].items()}
    )
    for call in calls.values():
        for _ in range(200):  # warm caches outside the collected region
            call()
        functools.reduce(lambda _acc, _i, call=call: call(), range(spec["number"]), None)


def instructions(fixture: harness.Fixture, number: int, workdir: Path) -> dict[str, float]:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    specs = cases(fixture)
    spec_file = workdir / "spec.json"
    spec_file.write_text(
        json.dumps(
            {"data_dir": str(fixture.data_dir), "path": fixture.path, "cases": specs, "number": number}
        )
    )
    out = workdir / "callgrind.out"
    subprocess.run(
        [
            "valgrind", "--tool=callgrind",
            "--toggle-collect=functools_reduce", "--dump-after=functools_reduce",
            f"--callgrind-out-file={out}", sys.executable, __file__, "--child", str(spec_file),
        ],
        check=True, capture_output=True, env=harness.clean_env(),
    )  # fmt: skip
    dumps = sorted(workdir.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))[-len(specs) :]
    results = {}
    for name, dump in zip(specs, dumps, strict=True):
        total = next(
            int(line.split()[1]) for line in dump.read_text().splitlines() if line.startswith("totals:")
        )
        results[name] = total / number
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--number", type=int, default=20_000, help="calls per run (default 20000; 2000 for -i)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="runs per case (default 7)")
    parser.add_argument("-i", "--instructions", action="store_true", help="callgrind instruction counts")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of each case instead")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="csscert-micro-"))
    results: dict[str, dict[str, float]] = {}
    try:
        fixture = harness.bootstrap(workdir)
        if args.instructions:
            number = args.number if args.number != 20_000 else 2000
            for name, count in instructions(fixture, number, workdir).items():
                results[name] = {"instructions": round(count)}
                print(f"{name:20s} {count:10,.0f} instructions per call", flush=True)
        else:
            for name, call in make_calls(fixture.data_dir, fixture.path, cases(fixture)).items():
                if args.profile:
                    profile(name, call, args.number)
                    continue
                timed(call, 500)
                runs = [timed(call, args.number) for _ in range(args.repeat)]
                results[name] = {
                    "best_us": round(min(runs), 3),
                    "median_us": round(statistics.median(runs), 3),
                }
                print(
                    f"{name:20s} CPU best {min(runs):7.2f} us   median {statistics.median(runs):7.2f} us",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json and results:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
