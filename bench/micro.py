"""In-process micro-benchmark of the hot path: ``App.handle`` per case, in microseconds per call.

``python bench/micro.py`` bootstraps a data dir (one real ``csscert serve``), then builds the
app exactly as a granian worker does (``App(Service(Settings(...)))``) and times
``App.handle`` for each benchmark case, driving the coroutine directly (the download path
never awaits). The server and the network are left out on purpose: this number moves only
when the Python code of the hot path changes, so it is a far less noisy before/after
measure than requests per second on a busy machine. Reported: the best of ``--repeat``
runs of ``--number`` calls (the usual timeit convention) and the median.

``--profile`` runs pyinstrument over each case instead and prints where the time goes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from run import tampered

from csscert.api.app import App
from csscert.service import Service
from csscert.settings import Settings


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the handler awaited something")


def cases(fixture: harness.Fixture, port: int) -> dict[str, tuple[dict[str, str], int]]:
    """name -> (request headers as granian hands them over: lower-case names, expected status)."""
    signed = {k.lower(): v for k, v in harness.signed_headers(fixture, port).items()}
    host = {"host": f"{harness.HOST}:{port}", "user-agent": "wrk", "accept": "*/*"}
    return {
        "token-200": ({**host, "x-auth-token": fixture.token}, 200),
        "aksk-200": ({"user-agent": "wrk", "accept": "*/*", **signed}, 200),
        "token-304": ({**host, "x-auth-token": fixture.token, "if-none-match": fixture.etag}, 304),
        "invalid-401": ({**host, "x-auth-token": tampered(fixture.token)}, 401),
        "no-credentials-401": (host, 401),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=20_000, help="calls per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=7, help="runs per case (default 7)")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of each case instead")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="csscert-micro-"))
    try:
        fixture = harness.bootstrap(workdir)
        port = 8080
        app = App(Service(Settings(data_dir=fixture.data_dir, port=port, log_level="WARNING")))
        results: dict[str, dict[str, float]] = {}
        for name, (headers, expect) in cases(fixture, port).items():

            def call(headers: dict[str, str] = headers) -> Any:
                return drive(app.handle("GET", fixture.path, "", headers, b"", "http"))

            status = call()[0]
            if status != expect:
                raise SystemExit(f"{name}: expected {expect}, got {status}: {call()[2][:300]!r}")
            if args.profile:
                profile(name, call, args.number)
                continue
            runs = [timed(call, args.number) for _ in range(args.repeat)]
            results[name] = {"best_us": round(min(runs), 3), "median_us": round(statistics.median(runs), 3)}
            print(
                f"{name:20s} best {min(runs):7.2f} us   median {statistics.median(runs):7.2f} us", flush=True
            )
        if args.json and results:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def timed(call: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) * 1e6 / number


def profile(name: str, call: Callable[[], Any], number: int) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(number):
        call()
    profiler.stop()
    print(f"===== {name}")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    raise SystemExit(main())
