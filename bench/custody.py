"""Key custody at size: backup, restore and master-key rotation of a store with N users, each with an
AK/SK (so N sealed secrets), timed and with the peak memory of each command, next to an ordinary
command (`ca list`) as the baseline: memory must not grow with the store (rows are streamed).

Wall time is inflated by whatever else runs on the machine; the CPU time (user + system of the
command) barely moves with it. `--readme` rewrites the table in README.md between the custody-bench
markers.

    .venv/bin/python bench/custody.py [--users 20000] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSSCERT = str(Path(sys.executable).with_name("csscert"))


def run(*args: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one csscert command (its own rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen([CSSCERT, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        error = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"csscert {' '.join(args)} failed: {error}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--readme", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as where:
        base = Path(where)
        data = str(base / "data")
        run("--data-dir", data, "init")
        users = base / "users.jsonl"
        with users.open("w") as out:
            for i in range(options.users):
                out.write(json.dumps({"name": f"u{i:07d}", "projects": ["local-1"]}) + "\n")
        run("--data-dir", data, "user", "import", str(users), "--credentials-out", str(base / "creds.jsonl"))
        rows = []
        baseline = run("--data-dir", data, "ca", "list", "--json")
        rows.append(("ca list (baseline)", baseline))
        backup = base / "store.backup"
        rows.append(("backup", run("--data-dir", data, "backup", str(backup))))
        size = backup.stat().st_size
        key = str(base / "data" / "master.key")
        rows.append(
            (
                "restore",
                run("--data-dir", str(base / "restored"), "restore", str(backup), "--master-key-file", key),
            )
        )
        rows.append(("master-key rotate", run("--data-dir", data, "master-key", "rotate")))
    lines = [
        f"Store: {options.users} users, each with an AK/SK ({options.users} sealed secrets); backup file "
        f"{size / 1e6:.1f} MB.",
        "",
        "| command | wall s | CPU s | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{name}` | {wall:.2f} | {cpu:.2f} | {rss} |" for name, (wall, cpu, rss) in rows]
    table = "\n".join(lines)
    print(table)
    if options.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        pattern = re.compile(r"(<!-- custody-bench:start -->\n).*?(<!-- custody-bench:end -->)", re.S)
        readme.write_text(pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


if __name__ == "__main__":
    main()
