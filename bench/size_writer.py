"""The size benchmark's writer: a separate process that writes at a fixed rate while wrk runs.

``python bench/size_writer.py --data-dir D --project P --rate R --seconds S [--database-url U]``

It opens the data directory the way a CLI command does (``csscert.identity.Identity``, in this
process), mints the tokens it will revoke up front, prints ``ready``, waits for a line on
standard input, then alternates two writes on a fixed schedule (write k is due at k/R s):
a token revocation (``Identity.revoke_claims``, what ``DELETE /v3/auth/tokens`` and
``csscert token revoke`` do) and a user create (``Identity.create_user``). A write that is late
starts at once (no burst is skipped or merged); the summary says which rate it reached. It ends
after S seconds and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import size_fill


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--project", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()

    from csscert.errors import CsscertError
    from csscert.identity.directory import mint_token, token_codec

    env = {"CSSCERT_DATABASE_URL": args.database_url} if args.database_url else {}
    with size_fill.service(args.data_dir, env) as svc:
        identity, store = svc.identity, svc.store
        domain = store.domain_by_name(svc.settings.domain_name)
        project = store.project(args.project)
        assert domain is not None and project is not None
        owners = store.users_page(size_fill.user_name(0), 500, domain_id=domain.id) or store.users_page(
            None, 500, domain_id=domain.id
        )
        codec = token_codec(store.fernet_keys(), svc.sealer)
        total = int(args.rate * args.seconds) + 2
        now = time.time()
        claims = [
            mint_token(codec, 3600, owners[i % len(owners)], project, ["token"], now).claims
            for i in range(total // 2 + 1)
        ]
        tag = secrets.token_hex(4)
        print("ready", flush=True)
        sys.stdin.readline()

        latencies: list[float] = []
        errors: list[str] = []
        kinds = {"revocation": 0, "user_create": 0}
        started = time.perf_counter()
        late = 0.0
        for k in range(total):
            due = started + k / args.rate
            now_p = time.perf_counter()
            if now_p - started >= args.seconds:
                break
            if due > now_p:
                time.sleep(due - now_p)
            else:
                late = max(late, now_p - due)
            t0 = time.perf_counter()
            try:
                if k % 2 == 0:
                    identity.revoke_claims(claims[k // 2])
                    kinds["revocation"] += 1
                else:
                    identity.create_user(f"w{tag}-{k:06d}", [project.id], None)
                    kinds["user_create"] += 1
            except CsscertError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    summary = {
        "rate_asked": args.rate,
        "writes": done,
        "seconds": round(elapsed, 2),
        "rate_done": round(done / elapsed, 1) if elapsed else 0.0,
        **kinds,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "write_ms_p50": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "write_ms_p99": round(1000 * latencies[min(done - 1, int(done * 0.99))], 2) if latencies else None,
        "write_ms_max": round(1000 * latencies[-1], 2) if latencies else None,
        "max_late_ms": round(1000 * late, 1),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
