"""How fast the CLI answers: `--help`, `--version` and an ordinary command (`project list`).

Targets (issue 11): `--help`/`--version` under 0.3 s, an ordinary command under 0.8 s. Uses
hyperfine when it is installed (`apt-get install hyperfine`), else times repeated runs itself.
Both report wall time (which other programs on the machine inflate) and the CPU time of the
command itself (user + system, which they barely move). `--readme` rewrites the table in
README.md between the cli-bench markers.

    .venv/bin/python bench/cli.py [--runs 20] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSSCERT = str(Path(sys.executable).with_name("csscert"))
CASES = [("--help", [], 0.3), ("--version", [], 0.3), ("project list", ["project", "list"], 0.8)]


def _own(runs: int, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Median wall and median CPU (user + system of the child) in seconds."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def _hyperfine(runs: int, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                "hyperfine",
                "-N",
                "--warmup",
                "2",
                "--runs",
                str(runs),
                "--export-json",
                out.name,
                " ".join(argv),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result = json.loads(Path(out.name).read_text())["results"][0]
    return float(result["median"]), float(result["user"]) + float(result["system"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args()
    tool = "hyperfine" if shutil.which("hyperfine") else "subprocess"
    measure = _hyperfine if tool == "hyperfine" else _own
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}
        env["CSSCERT_DATA_DIR"] = str(Path(tmp) / "data")
        subprocess.run([CSSCERT, "init"], env=env, check=True, capture_output=True)
        for label, extra, goal in CASES:
            wall, cpu = measure(args.runs, [CSSCERT, *(extra or [label])], env)
            rows.append((label, wall, cpu, goal))
    load = os.getloadavg()[0]
    lines = [
        f"`bench/cli.py` ({tool}, {args.runs} runs, median; "
        f"load average {load:.2f} on {os.cpu_count()} cores):",
        "",
        "| command | wall s | CPU s (user+sys) | goal | met |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for label, wall, cpu, goal in rows:
        lines.append(
            f"| `csscert {label}` | {wall:.3f} | {cpu:.3f} | < {goal} s "
            f"| {'yes' if wall < goal else '**no**'} |"
        )
    table = "\n".join(lines)
    print(table)
    (ROOT / "bench" / "results" / "cli.md").write_text(table + "\n")
    if args.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        block = (
            f"<!-- cli-bench:begin (written by bench/cli.py --readme) -->\n{table}\n<!-- cli-bench:end -->"
        )
        text, count = re.subn(r"<!-- cli-bench:begin.*?<!-- cli-bench:end -->", block, text, flags=re.S)
        if count != 1:
            sys.exit("README.md has no cli-bench markers")
        readme.write_text(text)


if __name__ == "__main__":
    main()
