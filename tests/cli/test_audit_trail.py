"""The audit trail: every change by the CLI or the API is one append-only record (who, what, when,
from where) and a log line; ``csscert audit list [--since] [--json]`` shows them; no secret in it."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from support.server import CsscertServer, ServerFactory


def _login(server: CsscertServer, user: str, password: str, project_id: str) -> httpx.Response:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": "csscert"}, "password": password}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }
    return httpx.post(f"{server.url}/v3/auth/tokens", json=body, timeout=30)


def test_a_scripted_sequence_of_changes_is_listed_exactly(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    since = dt.datetime.now(dt.UTC).isoformat()
    password, new_password = "first-pass-123", "second-pass-456"
    project = server.cli_json("project", "create", "tenant")
    user = json.loads(
        server.cli("user", "create", "carol", "--project", project["id"], "--password-stdin", "--json",
                   input=password + "\n").stdout
    )  # fmt: skip
    key = server.cli_json("credential", "create", "--user", "carol")
    server.cli("credential", "disable", key["access"])
    server.token(user="carol", project=project["id"])  # reads only: no record
    logged_in = _login(server, "carol", password, project["id"])
    assert logged_in.status_code == 201, logged_in.text
    token = logged_in.headers["x-subject-token"]
    revoked = httpx.delete(
        f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    assert revoked.status_code == 204
    server.cli("user", "set-password", "carol", input=new_password + "\n")
    server.cli("user", "disable", "carol")
    old_ca = server.cli_json("ca", "show")["fingerprint_sha256"]
    server.cli("ca", "rotate")
    server.cli("cert", "issue", "--project", project["id"], "--name", "node-1", "--dns", "node-1.example",
               "--out", str(tmp_path / "certs"))  # fmt: skip
    server.cli("ca", "retire", old_ca)
    server.cli("token", "rotate-keys")
    server.cli("credential", "delete", key["access"])
    server.cli("user", "delete", "carol")

    records = server.cli_json("audit", "list", "--since", since)
    carol = f"user carol ({user['id']})"
    expected = [
        ("project.create", f"project {project['name']} ({project['id']})"),
        ("user.create", carol),
        ("credential.create", f"access key {key['access']} of {carol}"),
        ("credential.disable", f"access key {key['access']}"),
        ("token.revoke", None),
        ("user.set-password", carol),
        ("token.revoke-user", carol),
        ("token.revoke-user", carol),
        ("user.disable", carol),
        ("ca.rotate", None),
        ("cert.issue", None),
        ("ca.retire", f"CA {old_ca[:16]} scope region"),
        ("token.rotate-keys", None),
        ("credential.delete", f"access key {key['access']}"),
        ("user.delete", carol),
    ]
    assert [r["action"] for r in records] == [action for action, _ in expected], records
    for record, (_, target) in zip(records, expected, strict=True):
        if target is not None:
            assert record["target"] == target
    assert re.fullmatch(rf"token \S+ of user {user['id']}", records[4]["target"])
    assert (
        records[10]["target"].startswith("node node-1 serial ") and "node-1.example" in records[10]["detail"]
    )
    # Who and from where: the CLI's person and process; the API's caller, address and request id.
    api = records[4]
    assert api["actor"] == f"user:{user['id']}"
    assert api["origin"] == f"api 127.0.0.1 request {revoked.headers['x-request-id']}"
    assert all(
        r["actor"].startswith("cli:") and r["origin"].startswith("cli on ") for r in records if r is not api
    )
    revisions = [r["revision"] for r in records]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    # No secret anywhere in the trail or in the log lines about it.
    trail = server.cli("audit", "list", "--json").stdout
    log = (server.data_dir.parent / f"server-{server.port}.log").read_text()
    for secret in (password, new_password, key["secret"], token):
        assert secret not in trail and secret not in log
    # The server logged the API's change as a line of its own.
    assert re.search(r"INFO csscert\.audit token\.revoke token \S+ of user " + user["id"], log), log[-2000:]


def test_the_trail_is_listed_as_a_table_and_filtered_by_since(make_server: ServerFactory) -> None:
    server = make_server()
    everything = server.cli_json("audit", "list")
    assert [r["action"] for r in everything][:2] == ["domain.create", "token.rotate-keys"]
    assert {"project.create", "user.create", "credential.create", "ca.create"} <= {
        r["action"] for r in everything
    }
    assert server.cli_json("audit", "list", "--since", "1d") == everything
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    assert server.cli_json("audit", "list", "--since", later) == []
    table = server.cli("audit", "list").stdout
    assert "project.create" in table and "cli:" in table
    bad = server.cli("audit", "list", "--since", "yesterday", check=False)
    assert bad.returncode != 0 and "--since 'yesterday'" in bad.stderr


def test_a_change_and_its_record_commit_together(make_server: ServerFactory) -> None:
    """The record is written in the change's own transaction: a refused change leaves none."""
    server = make_server()
    before = len(server.cli_json("audit", "list"))
    assert (
        server.cli("user", "create", "csscert-admin", "--project", server.project_id, check=False).returncode
        == 1
    )
    assert len(server.cli_json("audit", "list")) == before
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db:
        (count,) = db.execute("SELECT count(*) FROM audit").fetchone()
    assert count == before


@pytest.mark.parametrize("value", ["30m", "12h", "7d", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00"])
def test_since_takes_durations_and_iso_times(value: str) -> None:
    from csscert.cli.audit import parse_since

    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    moment = parse_since(value, now)
    assert moment.tzinfo is not None and moment <= now
