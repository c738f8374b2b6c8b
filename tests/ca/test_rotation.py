"""CA rotation with overlap, retirement, expiry warnings and crash safety, on private servers.

Everything runs through the real ``csscert`` CLI and the real HTTP API; node certificates are
served by a real TLS listener and checked by curl, Python ``ssl`` and ``csscert verify``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import ssl
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from support.http import download
from support.server import EXIT_ERROR, CsscertServer, ServerFactory
from support.tls import (
    NODE_BODY,
    ca_list,
    curl,
    fingerprint,
    issue_node,
    json_bundle,
    listening,
    pem_fingerprints,
    python_ssl_connect,
)


def _active(cas: list[dict[str, Any]]) -> list[str]:
    return [ca["fingerprint_sha256"] for ca in cas if ca["state"] == "active"]


def _states(cas: list[dict[str, Any]]) -> dict[str, str]:
    return {ca["fingerprint_sha256"]: ca["state"] for ca in cas}


def test_rotation_overlap_and_retirement(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    token = server.token()

    # -- one CA -------------------------------------------------------------------------
    first = ca_list(server)
    assert [ca["state"] for ca in first] == ["active"]
    old_fp = first[0]["fingerprint_sha256"]
    old_node = issue_node(server, tmp_path / "old", "node-old")
    issue_node(server, tmp_path / "spare", "node-spare")
    v1 = download(server, token)
    assert pem_fingerprints(v1.content) == [old_fp]
    bundle_v1 = tmp_path / "bundle-v1.pem"
    bundle_v1.write_bytes(v1.content)

    refused = server.cli("ca", "retire", old_fp, check=False)
    assert refused.returncode == EXIT_ERROR and "active" in refused.stderr

    # -- rotate: both CAs are trusted, new first ----------------------------------------
    rotated = server.cli_json("ca", "rotate")
    new_fp = rotated["fingerprint_sha256"]
    assert rotated["state"] == "active" and new_fp != old_fp
    listed = ca_list(server)
    assert [(ca["fingerprint_sha256"], ca["state"]) for ca in listed] == [
        (new_fp, "active"),
        (old_fp, "trusted"),
    ]
    assert server.cli_json("ca", "show")["fingerprint_sha256"] == new_fp
    table = server.cli("ca", "list").stdout

    def colon(fp: str) -> str:
        return ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()

    assert "active" in table and "trusted" in table and colon(new_fp) in table and colon(old_fp) in table

    v2 = download(server, token)
    assert pem_fingerprints(v2.content) == [new_fp, old_fp]
    assert v2.headers["etag"] != v1.headers["etag"]
    # a cached copy is now stale by either validator
    assert download(server, token, headers={"If-None-Match": v1.headers["etag"]}).status_code == 200
    since_v1 = {"If-Modified-Since": v1.headers["last-modified"]}
    assert download(server, token, headers=since_v1).status_code == 200
    modified = [parsedate_to_datetime(v.headers["last-modified"]) for v in (v1, v2)]
    assert modified[1] > modified[0]
    assert download(server, token, headers={"If-None-Match": v2.headers["etag"]}).status_code == 304
    der = download(server, token, format="der").content
    assert fingerprint(x509.load_der_x509_certificate(der)) == new_fp
    assert [(c["fingerprint_sha256"], c["state"]) for c in json_bundle(server, token)] == [
        (new_fp, "active"),
        (old_fp, "trusted"),
    ]
    bundle_v2 = tmp_path / "bundle-v2.pem"
    bundle_v2.write_bytes(v2.content)
    p7b = tmp_path / "bundle-v2.p7b"
    p7b.write_bytes(download(server, token, format="p7b").content)
    printed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", str(p7b), "-print_certs"],
        capture_output=True,
        check=True,
    ).stdout
    assert sorted(pem_fingerprints(printed)) == sorted([new_fp, old_fp])  # a SET OF: DER order, not ours

    # -- new node certificates are signed by the new CA ---------------------------------
    new_node = issue_node(server, tmp_path / "new", "node-new")
    ca_certs = {fingerprint(c): c for c in x509.load_pem_x509_certificates(v2.content)}
    new_node.certificate.verify_directly_issued_by(ca_certs[new_fp])
    old_node.certificate.verify_directly_issued_by(ca_certs[old_fp])
    assert pem_fingerprints(new_node.cert.read_bytes())[1] == new_fp  # chain: node, then its CA
    assert pem_fingerprints(new_node.ca_file.read_bytes()) == [new_fp, old_fp]

    with listening(old_node.cert, old_node.key) as old_tls, listening(new_node.cert, new_node.key) as new_tls:
        # during the overlap the new bundle verifies both generations
        for listener in (old_tls, new_tls):
            assert python_ssl_connect(listener.port, bundle_v2).endswith(NODE_BODY)
            assert curl(listener.url(), bundle_v2).returncode == 0
            context = ssl.create_default_context(cafile=str(bundle_v2))
            assert httpx.get(listener.url("127.0.0.1"), verify=context).content == NODE_BODY
        # ... while a client that never re-downloaded only trusts the old generation
        assert curl(old_tls.url(), bundle_v1).returncode == 0
        assert curl(new_tls.url(), bundle_v1).returncode == 60

        # -- retirement rules ---------------------------------------------------------------
        refused = server.cli("ca", "retire", new_fp, check=False)
        assert refused.returncode == EXIT_ERROR and "active" in refused.stderr
        refused = server.cli("ca", "retire", old_fp[:12], check=False)
        assert refused.returncode == EXIT_ERROR
        assert "--force" in refused.stderr and "node-old" in refused.stderr and "node-spare" in refused.stderr
        # re-issuing a node with the new CA settles it; the other one still blocks
        issue_node(server, tmp_path / "old-reissued", "node-old")
        refused = server.cli("ca", "retire", old_fp, check=False)
        assert refused.returncode == EXIT_ERROR
        assert "node-spare" in refused.stderr and "node-old" not in refused.stderr
        failed = server.cli("ca", "retire", "00000000deadbeef", check=False)
        assert failed.returncode == EXIT_ERROR and "no single CA" in failed.stderr

        forced = server.cli(
            "ca", "retire", ":".join(old_fp[i : i + 2] for i in range(0, 16, 2)), "--force", "--json"
        )
        assert json.loads(forced.stdout)["state"] == "retired"
        assert "warning" in forced.stderr and "node-spare" in forced.stderr
        assert _states(ca_list(server)) == {new_fp: "active", old_fp: "retired"}
        again = server.cli("ca", "retire", old_fp, "--force", check=False)
        assert again.returncode == EXIT_ERROR and "already retired" in again.stderr

        # -- after retirement: the old generation is rejected --------------------------------
        v3 = download(server, token)
        assert pem_fingerprints(v3.content) == [new_fp]
        assert download(server, token, headers={"If-None-Match": v2.headers["etag"]}).status_code == 200
        since_v2 = {"If-Modified-Since": v2.headers["last-modified"]}
        assert download(server, token, headers=since_v2).status_code == 200
        assert [c["fingerprint_sha256"] for c in json_bundle(server, token)] == [new_fp]
        bundle_v3 = tmp_path / "bundle-v3.pem"
        bundle_v3.write_bytes(v3.content)
        assert python_ssl_connect(new_tls.port, bundle_v3).endswith(NODE_BODY)
        assert curl(new_tls.url(), bundle_v3).returncode == 0
        with pytest.raises(ssl.SSLCertVerificationError):
            python_ssl_connect(old_tls.port, bundle_v3)
        assert curl(old_tls.url(), bundle_v3).returncode == 60
        verdict = server.cli("verify", old_tls.url(), "--cafile", str(bundle_v3), check=False)
        assert verdict.returncode == 1 and "wrong CA" in verdict.stderr
        verdict = server.cli("verify", new_tls.url(), "--cafile", str(bundle_v3), check=False)
        assert verdict.returncode == 0 and "OK" in verdict.stdout

    # the only CA left cannot be retired either
    refused = server.cli("ca", "retire", new_fp, "--force", check=False)
    assert refused.returncode == EXIT_ERROR


def test_rotation_in_project_scope_touches_one_project(make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--ca-scope", "project"])
    token = server.token()
    other = server.cli_json("project", "create", "rot_b")["id"]
    server.cli("user", "create", "rot-b-user", "--project", other)
    other_token = server.token("rot-b-user", other)
    before_a = download(server, token)
    before_b = download(server, other_token, project=other)
    assert pem_fingerprints(before_a.content) != pem_fingerprints(before_b.content)

    refused = server.cli("ca", "rotate", check=False)
    assert refused.returncode == EXIT_ERROR and "--project" in refused.stderr
    rotated = server.cli_json("ca", "rotate", "--project", other)
    after_b = download(server, other_token, project=other)
    expected = [rotated["fingerprint_sha256"], *pem_fingerprints(before_b.content)]
    assert pem_fingerprints(after_b.content) == expected
    after_a = download(server, token)
    assert after_a.content == before_a.content and after_a.headers["etag"] == before_a.headers["etag"]
    states = _states(server.cli_json("ca", "list", "--project", other))
    assert list(states.values()) == ["active", "trusted"]
    assert len(server.cli_json("ca", "list", "--project", server.project_id)) == 1


def test_expiring_ca_warns_in_cli_and_api(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(extra_args=["--ca-validity-days", "30"])
    token = server.token()
    shown = server.cli("ca", "show")
    assert "warning" in shown.stderr and "expires" in shown.stderr
    info = server.cli_json("ca", "show")
    assert info["expires_soon"] is True
    not_after = dt.datetime.fromisoformat(info["not_after"])
    assert dt.timedelta(days=29) < not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    for fmt in ("pem", "der", "p7b", "p12", "json"):
        response = download(server, token, format=fmt)
        assert response.status_code == 200
        warning = response.headers["warning"]
        assert warning.startswith('299 csscert "') and warning.endswith('"')
        assert "expires" in warning and not_after.isoformat() in warning
        revalidated = download(server, token, format=fmt, headers={"If-None-Match": response.headers["etag"]})
        assert revalidated.status_code == 304 and revalidated.headers["warning"] == warning
    downloaded = server.cli(
        "download",
        "--endpoint",
        server.url,
        "--project",
        server.project_id,
        "--token",
        token,
        "-o",
        str(tmp_path / "ca.pem"),
    )
    assert "expires" in downloaded.stderr


# -- crash safety -----------------------------------------------------------------------------

# Runs the real CLI, SIGKILLing itself at the N-th step boundary (before each SQL statement,
# before COMMIT, around the in-place write of the change signal) once the store's write of a rotation
# or retirement has begun; kills before that moment (key generation, reads) are what the
# random-delay kills below mostly hit. Nothing is replaced: the wrapper only counts and kills.
_KILLER = r"""
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from csscert.store import SqlStore

target = int(os.environ["KILL_AT_STEP"])
state = {"armed": False, "steps": 0}

def step() -> None:
    if state["armed"]:
        state["steps"] += 1
        if state["steps"] == target:
            os.kill(os.getpid(), signal.SIGKILL)

event.listen(Engine, "before_cursor_execute", lambda *args: step())
event.listen(Engine, "commit", lambda *args: step())
_pwrite = os.pwrite
def pwrite(*args, **kwargs):
    step()
    written = _pwrite(*args, **kwargs)
    step()
    return written
os.pwrite = pwrite

def arming(method):
    def wrapper(*args, **kwargs):
        state["armed"] = True
        return method(*args, **kwargs)
    return wrapper
SqlStore.add_authority = arming(SqlStore.add_authority)
SqlStore.retire_authority = arming(SqlStore.retire_authority)

from csscert.cli import main
sys.argv = ["csscert", *sys.argv[1:]]
main()
"""


def _bundle_via_api(server: CsscertServer, token: str) -> list[tuple[str, str]]:
    """The bundle the API serves, after checking every representation agrees with the json one."""
    listed = [(c["fingerprint_sha256"], c["state"]) for c in json_bundle(server, token)]
    pem = download(server, token)
    assert pem.status_code == 200
    assert pem_fingerprints(pem.content) == [fp for fp, _ in listed]
    der = download(server, token, format="der")
    assert der.status_code == 200 and fingerprint(x509.load_der_x509_certificate(der.content)) == listed[0][0]
    return listed


def _settled_bundle(server: CsscertServer, token: str) -> list[tuple[str, str]]:
    """The API's bundle once it reflects the database (the revision poll runs every 0.1 s).

    A process killed between its commit and the change signal leaves the servers on the old
    view until their next revision poll; wait that out before sampling, so the three requests
    of one sample cannot straddle the catch-up.
    """
    time.sleep(0.3)
    previous = _bundle_via_api(server, token)
    for _ in range(20):
        time.sleep(0.25)
        current = _bundle_via_api(server, token)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the API's bundle did not settle")


def _assert_usable(bundle: list[tuple[str, str]]) -> None:
    states = [state for _, state in bundle]
    assert states and states[0] == "active" and states.count("active") == 1, bundle
    assert set(states[1:]) <= {"trusted"}, bundle


def _is_rotation_of(after: list[tuple[str, str]], before: list[tuple[str, str]]) -> bool:
    demoted = [(before[0][0], "trusted"), *before[1:]]
    return len(after) == len(before) + 1 and after[1:] == demoted and after[0][0] not in dict(before)


@pytest.mark.slow
def test_rotate_and_retire_survive_sigkill_at_every_step(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(env={"CSSCERT_REVISION_POLL_SECONDS": "0.1"})
    token = server.token()
    killer = tmp_path / "killer.py"
    killer.write_text(_KILLER)

    def run(step: int | None, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(killer), "--data-dir", str(server.data_dir), *args]
        env = {**server.process_env(), "KILL_AT_STEP": str(step or 0)}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    # -- rotate, killed at each step in turn, until a run completes -------------------------
    bundle = _settled_bundle(server, token)
    outcomes: list[str] = []
    for step in range(1, 100):
        result = run(step, "ca", "rotate")
        after = _settled_bundle(server, token)
        _assert_usable(after)
        if result.returncode == 0:
            assert _is_rotation_of(after, bundle)
            bundle = after
            break
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert after == bundle or _is_rotation_of(after, bundle), (step, bundle, after)
        outcomes.append("old" if after == bundle else "new")
        bundle = after
    else:
        pytest.fail("ca rotate never completed")
    assert "old" in outcomes and "new" in outcomes, outcomes  # the kills landed on both sides of COMMIT

    # -- retire, likewise -------------------------------------------------------------------
    outcomes = []
    for step in range(1, 100):
        if len(bundle) < 2:
            assert server.cli("ca", "rotate").returncode == 0
            bundle = _settled_bundle(server, token)
        target = bundle[-1][0]
        result = run(step, "ca", "retire", target)
        after = _settled_bundle(server, token)
        _assert_usable(after)
        retired = [entry for entry in bundle if entry[0] != target]
        if result.returncode == 0:
            assert after == retired
            bundle = after
            break
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert after in (bundle, retired), (step, bundle, after)
        outcomes.append("old" if after == bundle else "new")
        bundle = after
    else:
        pytest.fail("ca retire never completed")
    assert "old" in outcomes and "new" in outcomes, outcomes

    # -- and SIGKILL from outside at random moments -------------------------------------------
    started = time.monotonic()
    server.cli("ca", "rotate")
    full = time.monotonic() - started
    bundle = _settled_bundle(server, token)
    rng = random.Random(4)  # reproducible moments, spread over the whole run
    for index in range(4):
        delay = full * rng.uniform(0.3, 1.05)
        retiring = index % 2 == 1 and len(bundle) > 1
        args = ["ca", "retire", bundle[-1][0]] if retiring else ["ca", "rotate"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "csscert", "--data-dir", str(server.data_dir), *args],
            env=server.process_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        after = _settled_bundle(server, token)
        _assert_usable(after)
        if retiring:
            assert after in (bundle, bundle[:-1]), (delay, bundle, after)
        else:
            assert after == bundle or _is_rotation_of(after, bundle), (delay, bundle, after)
        bundle = after

    # the CLI's view of the database agrees with the API's, retired CAs included
    cas = ca_list(server)
    assert _active(cas) == [bundle[0][0]]
    assert [(ca["fingerprint_sha256"], ca["state"]) for ca in cas if ca["state"] != "retired"] == bundle
    assert server.cli("ca", "rotate").returncode == 0  # and the data still works normally
    _assert_usable(_settled_bundle(server, token))
