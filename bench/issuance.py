"""Issuance throughput: ``.venv/bin/python bench/issuance.py`` (the project's venv).

One csscert worker on a served-once data dir (the bootstrap user holds certificate-issuer), wrk
(HTTP/1.1 keep-alive) replaying one request per case for ``--duration`` seconds:

* ``sign-rsa2048`` / ``sign-p256``: ``POST /v1.0/{project}/csscert/certificates`` with the same CSR
  (RSA 2048 or P-256 key) every time, each request a real signature (the CA's RSA 2048 key), a
  new serial and its rows written to SQLite: signing requests per second per worker;
* ``crl-empty`` / ``crl-1000``: ``GET /v1.0/crl/{ca}.crl`` (public) before any revocation and after
  1,000 revocations made over the API, served from the worker's cache;
* ``download-token``: ``GET /v1.0/{project}/cer/download`` with X-Auth-Token, the baseline the
  CRL fetch sits next to.

'server CPU us/req' is the CPU time of the server's processes divided by the requests served (it
hardly moves when other programs compete for the cores). Results: bench/results/issuance-latest.json
and .md, and the README table between the ``bench-issuance`` markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Csscert, Fixture, WrkResult

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
README_BEGIN = "<!-- bench-issuance:begin (written by bench/issuance.py) -->"
README_END = "<!-- bench-issuance:end -->"

POST_SCRIPT = """\
local f = io.open(os.getenv("CSSCERT_BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""

ENV = {"CSSCERT_RATE_LIMIT_CREDENTIAL": "100000000/1", "CSSCERT_ACCESS_LOG": "off"}


def csr_body(kind: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa2048"
        else ec.generate_private_key(ec.SECP256R1())
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench-{kind}")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"bench-{kind}.search.internal")]), False)
        .sign(key, hashes.SHA256())
    )
    return json.dumps({"csr": csr.public_bytes(serialization.Encoding.PEM).decode()}).encode()


def post(port: int, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(harness.HOST, port, timeout=30)
    try:
        conn.request("POST", path, body, {"X-Auth-Token": token, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def revoke_many(port: int, fixture: Fixture, count: int) -> float:
    """Revoke ``count`` certificates over the API (paged listing, then one POST each); seconds."""
    import http.client

    started = time.perf_counter()
    collection = f"/v1.0/{fixture.project_id}/csscert/certificates"
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=30)
    headers = {"X-Auth-Token": fixture.token, "Content-Type": "application/json"}
    done, marker = 0, ""
    while done < count:
        query = f"?limit=1000&marker={marker}" if marker else "?limit=1000"
        conn.request("GET", collection + query, headers=headers)
        page = json.loads(conn.getresponse().read())
        serials = [c["serial"] for c in page["certificates"] if c["status"] != "revoked"]
        for serial in serials[: count - done]:
            conn.request("POST", f"{collection}/{serial}/revoke", b'{"reason": "superseded"}', headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"revoke failed: {reply.status}")
            done += 1
        if not page["next_marker"]:
            break
        marker = page["next_marker"]
    conn.close()
    if done < count:
        raise RuntimeError(f"only {done} certificates to revoke")
    return time.perf_counter() - started


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    fixture = harness.bootstrap(workdir, ENV)
    server = Csscert(fixture.data_dir, 1, None, workdir / "serve.log", env=ENV)
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        server.wait_ready()
        pids = server.all_pids()
        collection = f"/v1.0/{fixture.project_id}/csscert/certificates"

        def record(name: str, description: str, result: WrkResult) -> None:
            row = {"case": name, "description": description, **result.as_dict()}
            rows.append(row)
            print(
                f"{name:16} {row['rps']:>10.1f} req/s  p50 {row['p50_ms']:.2f} ms  "
                f"p99 {row['p99_ms']:.2f} ms  CPU {row['cpu_us_per_req']} us/req  "
                f"non-2xx {row['non_2xx_3xx']}"
            )

        for kind in ("rsa2048", "p256"):
            body_file = workdir / f"{kind}.json"
            body_file.write_bytes(csr_body(kind))
            status, reply = post(server.port, collection, fixture.token, body_file.read_bytes())
            if status != 201:
                raise RuntimeError(f"sign-{kind}: {status} {reply[:300]!r}")
            script = workdir / "post.lua"
            script.write_text(POST_SCRIPT)
            result = harness.run_wrk(
                server.port, collection, {"X-Auth-Token": fixture.token}, args.connections,
                args.duration, 1, None, pids, script, {"CSSCERT_BENCH_BODY": str(body_file)},
            )  # fmt: skip
            record(f"sign-{kind}", f"POST a {kind} CSR: verify, sign (CA RSA 2048), write", result)
        ca = json.loads(
            subprocess.run(
                [*harness.CSSCERT, "--data-dir", str(fixture.data_dir), "ca", "show", "--json"],
                check=True, capture_output=True, text=True, env=harness.clean_env(ENV),
            ).stdout
        )  # fmt: skip
        crl_path = f"/v1.0/crl/{ca['fingerprint_sha256']}.crl"

        def get(name: str, path: str, headers: dict[str, str], description: str) -> None:
            check = harness.request(server.port, path, headers)
            if check.status != 200:
                raise RuntimeError(f"{name}: {check.status} {check.body[:200]!r}")
            result = harness.run_wrk(
                server.port, path, headers, args.connections, args.duration, 1, None, pids
            )
            row_description = f"{description} ({len(check.body)} bytes)"
            record(name, row_description, result)

        get("download-token", fixture.path, {"X-Auth-Token": fixture.token}, "the download, X-Auth-Token")
        get("crl-empty", crl_path, {}, "the CA's CRL, no entry")
        seconds = revoke_many(server.port, fixture, args.revocations)
        print(f"revoked {args.revocations} certificates over the API in {seconds:.1f} s")
        get(f"crl-{args.revocations}", crl_path, {}, f"the CA's CRL, {args.revocations} entries")
    finally:
        server.stop()
    return {
        "machine": harness.machine_info(),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "duration_s": args.duration,
        "connections": args.connections,
        "workers": 1,
        "revocations": args.revocations,
        "revoke_seconds": round(seconds, 2),
        "cases": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        "# Issuance benchmark",
        "",
        f"One worker, wrk {result['connections']} connections x {result['duration_s']:g} s per case, "
        f"HTTP/1.1 keep-alive, access log off; {machine.get('cores_online', '?')} cores "
        f"({machine.get('cpu_model', '?')}), load average {result['loadavg']} at the start "
        "(the machine is shared: req/s move with the load, server CPU per request much less). "
        "Signing replays one CSR: each request verifies it, "
        "checks profile and policy, signs with the CA's RSA 2048 key and writes the record (SQLite). "
        f"{result['revocations']} revocations over the API took {result['revoke_seconds']} s.",
        "",
        "| case | what | req/s | p50 ms | p99 ms | server CPU us/req |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["cases"]:
        lines.append(
            f"| `{row['case']}` | {row['description']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['cpu_us_per_req'] or 0:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> bool:
    if not README.exists():
        return False
    text = README.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    body = table.split("\n", 1)[1].lstrip("\n")
    README.write_text(text[: start + len(README_BEGIN)] + "\n" + body.rstrip() + "\n" + text[end:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--revocations", type=int, default=1000, help="CRL entries for the second CRL case")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "issuance-latest", help="results path, no suffix"
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = parser.parse_args(argv)
    harness.check_python()
    harness.ensure_tools(("wrk",))
    with tempfile.TemporaryDirectory(prefix="csscert-bench-issuance-") as tmp:
        result = measure(args, Path(tmp))
    table = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table)
    print("\n" + table)
    if not args.no_readme and args.out == RESULTS / "issuance-latest" and update_readme(table):
        print(f"updated the issuance table in {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
