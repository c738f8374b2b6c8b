"""bench/run.py still works end to end: a tiny run (no timing is judged here, only that it ran right).

The benchmark checks every case's status and body before driving it with wrk, and marks a case
invalid when wrk saw unexpected statuses or socket errors; this test asserts on those checks, so
a bench that drifted from the API (a path, a header, a signature) fails here rather than at the
next full run. It needs nginx and wrk (installed by .ci/run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("wrk") is None or (shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists()),
    reason="needs Debian's nginx and wrk (.ci/run installs them)",
)
def test_a_tiny_bench_run_validates_every_case(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "run.py"),
            "--duration", "1", "--rounds", "1", "--warmup", "1", "--soak", "0", "--workers", "1",
            "--connections", "4", "--no-ceiling", "--out", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    summary = result["phases"][0]["summary"]
    assert set(summary) == {"nginx-200", "nginx-304", "token-200", "aksk-200", "token-304", "invalid-401"}
    for case, by_conns in summary.items():
        entry = by_conns["4"]
        assert entry["valid"], (case, entry)
        assert entry["rps"] > 0 and entry["p99_ms"] > 0, (case, entry)
    assert result["phases"][0]["startup_seconds"] > 0
    assert all(p is not None and p > 0 for p in result["phases"][0]["rss_peak_mib"]["workers"])
    assert "| token-200 | 4 |" in out.with_suffix(".md").read_text()
