"""The size benchmark's report: issue 9's targets per N, Markdown, and the README table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
README_BEGIN = "<!-- size:begin (written by bench/size.py) -->"
README_END = "<!-- size:end -->"


def _n(users: int) -> str:
    if users >= 1_000_000 and users % 1_000_000 == 0:
        return f"{users // 1_000_000} M"
    if users >= 1000 and users % 1000 == 0:
        return f"{users // 1000} k"
    return str(users)


def _worst(size: dict[str, Any], rate: str, key: str, pick: Any) -> float | None:
    values = [
        by[rate][key] for by in size["downloads"].values() if rate in by and by[rate].get(key) is not None
    ]
    return pick(values) if values else None


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 9 with its value at every N (``ok`` per N; None when not measured)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, goal: str, values: dict[str, float | None], test: Any) -> None:
        ok = {k: (None if v is None else bool(test(v))) for k, v in values.items()}
        rows.append({"target": name, "goal": goal, "values": values, "ok": ok})

    sizes = result["sizes"]
    by_n = {_n(s["users"]): s for s in sizes}
    add("start to first 200 (s, median)", "< 2", {k: s["startup"]["median_s"] for k, s in by_n.items()},
        lambda v: v < 2)  # fmt: skip
    peaks = {
        k: max(
            [p for p in (s["rss_peak_mib"], (s["soak"] or {}).get("peak_mib")) if p is not None], default=None
        )
        for k, s in by_n.items()
    }
    add("RSS per worker, peak (MiB)", "< 150", peaks, lambda v: v < 150)
    add("RSS growth over the soak with writes (%)", "flat (<= 5)",
        {k: (s["soak"] or {}).get("growth_pct") for k, s in by_n.items()}, lambda v: v <= 5)  # fmt: skip
    p99s = {k: _worst(s, "20", "p99_vs_no_writes", max) for k, s in by_n.items()}
    add("download p99 at 20 writes/s vs none (worst case)", "<= 1.2", p99s, lambda v: v <= 1.2)
    rates = {k: _worst(s, "200", "rps_vs_no_writes", min) for k, s in by_n.items()}
    add("download req/s at 200 writes/s vs none (worst case)", ">= 0.9", rates, lambda v: v >= 0.9)
    add("csscert token issue (s, median)", "< 1", {k: s["token_issue"]["median_s"] for k, s in by_n.items()},
        lambda v: v < 1)  # fmt: skip
    pg = result.get("postgres")
    if pg:
        key = f"PostgreSQL, {_n(pg['users'])}"
        add("revocation on A refused by B, p99 (ms)", "< 100", {key: pg["propagation"]["p99_ms"]},
            lambda v: v < 100)  # fmt: skip
        if pg.get("outage"):
            add("database stopped / frozen: longest wait (ms)", "<= 1500",
                {key: pg["outage"]["max_wait_ms"]}, lambda v: v <= 1500)  # fmt: skip
            add("database stopped / frozen: 500s (or errors)", "0",
                {key: pg["outage"]["status_500"] + pg["outage"]["errors"]}, lambda v: v == 0)  # fmt: skip
    return rows


def _targets_table(result: dict[str, Any]) -> list[str]:
    columns: list[str] = []
    for row in result["targets"]:
        columns += [k for k in row["values"] if k not in columns]
    lines = [
        "| target (issue 9) | goal | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for row in result["targets"]:
        cells = []
        for col in columns:
            if col not in row["values"] or row["values"][col] is None:
                cells.append("")
                continue
            mark = "" if row["ok"][col] else " **(no)**"
            cells.append(f"{row['values'][col]}{mark}")
        lines.append(f"| {row['target']} | {row['goal']} | " + " | ".join(cells) + " |")
    return lines


def _downloads_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| N | case | writes/s asked (done) | req/s | p50 ms | p99 ms | p99 vs none | req/s vs none "
        "| server CPU us/req | valid |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for size in result["sizes"]:
        for case, by_rate in size["downloads"].items():
            for rate, e in by_rate.items():
                done = f" ({e['writes_done_per_s']})" if "writes_done_per_s" in e else ""
                lines.append(
                    f"| {_n(size['users'])} | {case} | {float(rate):g}{done} | {e['rps']:.0f} | "
                    f"{e['p50_ms']:.2f} "
                    f"| {e['p99_ms']:.2f} | {e.get('p99_vs_no_writes', '')} | "
                    f"{e.get('rps_vs_no_writes', '')} "
                    f"| {e.get('cpu_us_per_req') or ''} | {'yes' if e['valid'] else 'NO'} |"
                )
    return lines


def _about(result: dict[str, Any]) -> list[str]:
    m, cfg = result["machine"], result["config"]
    return [
        f"Machine: {m['cpu_model']}, {m['cores_online']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, granian {m['granian']}; {m['wrk']}. Load average at start "
        f"{m['load_average_at_start']}, at each part {result['load_average_per_part']}, at the end "
        f"{m['load_average_at_end']}. {m['date']}.",
        "",
        f"SQLite, 1 worker ({cfg['connections']} wrk connections, {cfg['duration']:g} s per run, "
        f"{cfg['rounds']} round(s), medians; the server pinned to one core, wrk and the writer to the "
        "other). "
        f"Each N: N users with one AK/SK each via `csscert user import --credentials-out`, plus "
        f"{cfg['revocations']} live token revocations ({result['revocation_fill']}). Cases: `*-one` one "
        f"identity; `*-many` rotate over {cfg['identities']} distinct users' tokens / access keys "
        "(capped at N). "
        "Writes: a separate process alternating a token revocation and a user create at the asked rate "
        "(`Identity.revoke_claims` / `create_user`, as the CLI and `DELETE /v3/auth/tokens` do); "
        f"'done' is the rate it reached. Rate limits off (`CSSCERT_RATE_LIMITS=off`).",
    ]


def _details(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for s in result["sizes"]:
        fill, soak = s["fill"], s["soak"]
        lines += [
            f"### {_n(s['users'])} users",
            "",
            f"Fill: import {fill['import_seconds']} s, {s['revocations']} revocations "
            f"{fill['revocations_seconds']} s"
            f"{' (cached fill)' if fill['reused_cache'] else ''}; database {fill['database_mib']} MiB. "
            f"Start to first 200: {s['startup']['runs']} s. `csscert token issue`: "
            f"{s['token_issue']['runs']} s. "
            f"Worker RSS peak during the download runs: {s['rss_peak_mib']} MiB.",
            "",
        ]
        if soak:
            w = soak["writer"] or {}
            lines += [
                f"Soak ({soak['case']}, {soak['seconds']:g} s, {soak['wrk']['rps']:.0f} req/s, p99 "
                f"{soak['wrk']['p99_ms']:.2f} ms, writes {soak['writes_per_s']:g}/s asked, "
                f"{w.get('rate_done')}/s "
                f"done): worker RSS {soak['start_mib']} -> {soak['end_mib']} MiB "
                f"({soak['growth_pct']:+.1f} %), "
                f"peak {soak['peak_mib']} MiB.",
                "",
            ]
    pg = result.get("postgres")
    if pg:
        p = pg["propagation"]
        lines += [
            f"### PostgreSQL: two hosts, one database ({_n(pg['users'])} users, {pg['revocations']} "
            "revocations)",
            "",
            "Revocation on host A (`DELETE /v3/auth/tokens`, from its 204) until host B answers 401 "
            "for a token "
            f"it had accepted: {p['trials']} trials, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, max "
            f"{p['max_ms']} ms "
            f"(all: {p['delays_ms']}).",
            "",
        ]
        if pg.get("outage"):
            o = pg["outage"]
            lines += [
                f"Outage on host B ({o['seconds_each']:g} s stopped, then {o['seconds_each']:g} s "
                "frozen; a cached "
                "token and never-seen tokens): longest wait "
                f"{o['max_wait_ms']} ms, 500s {o['status_500']}, connection errors {o['errors']}.",
                "",
                "| phase | s | answers (kind status: count) | longest wait ms | first fresh 200 after ms |",
                "| --- | ---: | --- | ---: | ---: |",
            ]
            for ph in o["phases"]:
                answers = ", ".join(f"{k}: {v}" for k, v in ph["answers"].items())
                first = ph["first_fresh_200_after_ms"]
                lines.append(
                    f"| {ph['phase']} | {ph['seconds']} | {answers} | {ph['max_wait_ms']} "
                    f"| {'' if first is None else first} |"
                )
            lines.append("")
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = ["# csscert at size", "", *_about(result), "", "## Targets", "", *_targets_table(result), ""]
    lines += ["## Downloads with and without writes", "", *_downloads_table(result), "", *_details(result)]
    return "\n".join(lines)


def update_readme(result: dict[str, Any]) -> bool:
    """Put the targets and download tables between the README's size markers."""
    if not README.exists():
        return False
    text = README.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    body = [
        *_about(result),
        "",
        *_targets_table(result),
        "",
        *_downloads_table(result),
        "",
        *_details(result),
    ]
    body_text = "\n".join(body).replace("\n### ", "\n#### ")
    README.write_text(text[: start + len(README_BEGIN)] + "\n" + body_text.rstrip() + "\n" + text[end:])
    return True
