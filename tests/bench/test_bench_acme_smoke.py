"""bench/acme_orders.py still runs end to end (two full orders; no timing is judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_acme_order_bench_completes_full_orders() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "acme_orders.py"), "--orders", "2", "--clients", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["orders"] == 2 and result["orders_per_second"] > 0
