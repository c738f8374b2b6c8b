"""bench/size.py still works end to end: a tiny run (no timing is judged, only that it ran right).

Every wrk run is checked (first request 200 with the PEM; no unexpected status or socket error
marks it invalid), the writer process must reach its rate without errors, host B on PostgreSQL
must refuse each token revoked on host A, and the outage run must see no 500. It needs wrk
(.ci/run installs it) and, for the PostgreSQL part, PostgreSQL's server binaries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAS_POSTGRES = any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (.ci/run installs it)")
def test_bench_size_smoke_fills_measures_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "size"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "size.py"),
            "--sizes", "200", "--revocations", "500", "--identities", "50",
            "--duration", "1", "--warmup", "1", "--writes", "0,20", "--cases", "token-many,aksk-many",
            "--soak", "2", "--soak-writes", "20", "--starts", "1", "--issues", "1",
            "--trials", "3", "--outage", "0.5", "--out", str(out),
            *([] if HAS_POSTGRES else ["--skip-postgres"]),
        ],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["environment"]["CSSCERT_RATE_LIMITS"] == "off"
    (size,) = result["sizes"]
    assert size["users"] == 200 and size["fill"]["import_seconds"] > 0
    assert size["startup"]["median_s"] > 0 and size["token_issue"]["median_s"] > 0
    for case in ("token-many", "aksk-many"):
        assert set(size["downloads"][case]) == {"0", "20"}
        for rate, entry in size["downloads"][case].items():
            assert entry["valid"] and entry["rps"] > 0 and entry["p99_ms"] > 0, (case, rate, entry)
        with_writes = size["downloads"][case]["20"]
        assert with_writes["writes_done_per_s"] > 0 and with_writes["write_errors"] == 0
        assert with_writes["p99_vs_no_writes"] > 0 and with_writes["rps_vs_no_writes"] > 0
    soak = size["soak"]
    assert soak["peak_mib"] > 0 and soak["writer"]["writes"] > 0 and soak["writer"]["errors"] == 0
    names = {t["target"] for t in result["targets"]}
    assert "start to first 200 (s, median)" in names
    text = out.with_suffix(".md").read_text()
    assert "| 200 | token-many | 20 (" in text
    if HAS_POSTGRES:
        pg = result["postgres"]
        assert pg["propagation"]["trials"] == 3 and pg["propagation"]["max_ms"] > 0
        outage = pg["outage"]
        assert outage["status_500"] == 0 and outage["errors"] == 0
        phases = {p["phase"]: p for p in outage["phases"]}
        assert any(k.endswith(" 200") for k in phases["restarted"]["answers"]), phases
        assert "revocation on A refused by B, p99 (ms)" in names
