"""The CLI and the lifecycle of a data directory: first start, restart, project scope, env settings."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from support.server import EXIT_ERROR, CsscertServer, ServerFactory, clean_env, run_csscert

from csscert.sealing import generate_master_key

HEX32 = re.compile(r"[0-9a-f]{32}")


def _get(server: CsscertServer, token: str, project_id: str | None = None) -> httpx.Response:
    return httpx.get(server.download_url(project_id), headers={"X-Auth-Token": token})


def _fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificates(pem)[0].fingerprint(hashes.SHA256()).hex()


@pytest.fixture(scope="module")
def eu_de_server(make_server: ServerFactory) -> CsscertServer:
    """A server started once on an empty data directory (so its first-start banner is known)."""
    return make_server(extra_args=["--region", "eu-de"])


# -- first start ------------------------------------------------------------------------------


def test_first_start_prints_region_project_and_a_working_curl(
    eu_de_server: CsscertServer, tmp_path: Path
) -> None:
    banner = eu_de_server.first_start_output
    assert re.search(r"^region\s+eu-de$", banner, re.M), banner
    assert re.search(rf"^project id\s+{eu_de_server.project_id}\s+\(name eu-de\)$", banner, re.M), banner
    commands = [line.strip() for line in banner.splitlines() if line.strip().startswith("curl ")]
    assert len(commands) == 1, banner
    assert shlex.split(commands[0])[-1] == eu_de_server.download_url()
    # No secret in the banner (journald and container logs keep it): the command mints a token.
    assert "gAAAA" not in banner and "X-Auth-Token: $(csscert --data-dir" in commands[0], banner
    # Run it exactly as printed, in an empty directory, as a newcomer would (csscert on PATH).
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**eu_de_server.process_env(), "PATH": path}
    result = subprocess.run(
        ["sh", "-c", commands[0]], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    downloaded = (tmp_path / "CloudSearchService.cer").read_bytes()
    assert _fingerprint(downloaded) == eu_de_server.cli_json("ca", "show")["fingerprint_sha256"]
    assert downloaded == _get(eu_de_server, eu_de_server.token()).content
    # The bootstrap credentials are in a 0600 file, and the secrets are not on the screen.
    credentials = eu_de_server.data_dir / "bootstrap-credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    secrets = json.loads(credentials.read_text())
    assert secrets["password"] not in banner and secrets["secret_key"] not in banner


def test_restart_keeps_the_ca_and_prints_no_second_banner(eu_de_server: CsscertServer) -> None:
    token = eu_de_server.token()
    before = _get(eu_de_server, token)
    shown = eu_de_server.cli_json("ca", "show")
    eu_de_server.restart()
    after = _get(eu_de_server, token)  # tokens survive a restart too
    assert after.status_code == 200
    assert after.content == before.content
    assert after.headers["etag"] == before.headers["etag"]
    assert eu_de_server.cli_json("ca", "show") == shown
    assert eu_de_server.first_start_output.count("first start") == 1
    assert len(eu_de_server.cli_json("ca", "list")) == 1  # no second CA was created


# -- projects and CA scope --------------------------------------------------------------------


def test_project_create_prints_the_id_and_project_list_shows_the_region_prefixed_name(
    eu_de_server: CsscertServer,
) -> None:
    created = eu_de_server.cli("project", "create", "logs").stdout.strip()
    assert HEX32.fullmatch(created), created
    as_json = eu_de_server.cli_json("project", "create", "metrics")
    assert HEX32.fullmatch(as_json["id"]) and as_json["name"] == "eu-de_metrics"
    listed = eu_de_server.cli_json("project", "list")
    by_id = {p["id"]: p for p in listed}
    assert by_id[created]["name"] == "eu-de_logs" and by_id[created]["enabled"] is True
    assert dt.datetime.fromisoformat(by_id[created]["created_at"]).tzinfo is not None
    assert "T" in by_id[created]["created_at"]
    assert as_json["id"] in by_id and eu_de_server.project_id in by_id
    table = eu_de_server.cli("project", "list").stdout
    assert created in table and "eu-de_logs" in table
    duplicate = eu_de_server.cli("project", "create", "logs", check=False)
    assert duplicate.returncode == EXIT_ERROR and "already exists" in duplicate.stderr
    bad = eu_de_server.cli("project", "create", "has space", check=False)
    assert bad.returncode == EXIT_ERROR and "project name" in bad.stderr and "Traceback" not in bad.stderr


def test_project_scope_gives_each_project_its_own_ca(make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--ca-scope", "project"])
    a = server.cli("project", "create", "tenant-a").stdout.strip()
    b = server.cli_json("project", "create", "tenant-b")["id"]
    server.cli("user", "create", "tenant-user", "--project", a, "--project", b)
    token_a = server.token("tenant-user", a)
    token_b = server.token("tenant-user", b)
    got_a = _get(server, token_a, a)
    got_b = _get(server, token_b, b)
    got_region = _get(server, server.token())
    assert got_a.status_code == got_b.status_code == got_region.status_code == 200
    fingerprints = {_fingerprint(r.content) for r in (got_a, got_b, got_region)}
    assert len(fingerprints) == 3
    assert _fingerprint(got_a.content) == server.cli_json("ca", "show", "--project", a)["fingerprint_sha256"]
    shown_b = server.cli_json("ca", "show", "--project", "tenant-b")
    assert _fingerprint(got_b.content) == shown_b["fingerprint_sha256"]
    assert server.cli_json("ca", "show", "--project", a)["ca_scope"] == "project"
    # A token of project A does not download project B's CA.
    assert _get(server, token_a, b).status_code == 403
    # A node certificate of project A is trusted by A's clients, not by B's.
    out = server.data_dir.parent / "node-a"
    server.cli("cert", "issue", "--project", a, "--name", "a1", "--dns", "localhost", "--out", str(out))
    leaf = x509.load_pem_x509_certificates((out / "a1.crt").read_bytes())[0]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificates(got_a.content)[0])
    with pytest.raises(InvalidSignature):
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificates(got_b.content)[0])
    # In project scope, `ca show` needs a project.
    missing = server.cli("ca", "show", check=False)
    assert missing.returncode == EXIT_ERROR and "--project" in missing.stderr
    # Each project keeps its CA across a restart.
    server.restart()
    assert _get(server, token_a, a).content == got_a.content
    assert _get(server, token_b, b).content == got_b.content


# -- db upgrade, ca show ------------------------------------------------------------------------


def test_db_upgrade_on_a_new_and_on_a_live_data_dir(eu_de_server: CsscertServer, tmp_path: Path) -> None:
    new = CsscertServer(data_dir=tmp_path / "data")
    refused = new.cli("db", "upgrade", check=False)  # only init and serve create data
    assert refused.returncode == 1
    assert str(new.data_dir) in refused.stderr and "csscert init" in refused.stderr
    assert not new.data_dir.exists()
    new.cli("init")
    first = new.cli("db", "upgrade")
    revision = re.search(r"schema at revision (\S+)", first.stdout)
    assert revision, first.stdout
    with closing(sqlite3.connect(new.data_dir / "csscert.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(revision.group(1),)]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"projects", "users", "access_keys", "certificate_authorities", "fernet_keys"} <= tables
    assert new.cli("db", "upgrade").stdout == first.stdout  # idempotent
    live = eu_de_server.cli("db", "upgrade")
    assert f"schema at revision {revision.group(1)}" in live.stdout
    assert _get(eu_de_server, eu_de_server.token()).status_code == 200


def test_ca_show_prints_subject_fingerprint_validity_and_scope_for_people(
    eu_de_server: CsscertServer,
) -> None:
    shown = eu_de_server.cli_json("ca", "show")
    text = eu_de_server.cli("ca", "show").stdout
    colon = ":".join(re.findall("..", shown["fingerprint_sha256"])).upper()
    for expected in ("CN=CloudSearchService", colon, shown["not_before"], shown["not_after"], "region"):
        assert expected in text, (expected, text)


# -- CSSCERT_* environment variables ------------------------------------------------------------


def test_csscert_environment_variables_configure_region_ca_and_node_validity(
    make_server: ServerFactory,
) -> None:
    env = {
        "CSSCERT_REGION": "ap-southeast-3",
        "CSSCERT_CA_KEY_TYPE": "rsa3072",
        "CSSCERT_CA_SUBJECT": "CN=Env Root,O=csscert tests",
        "CSSCERT_CA_VALIDITY_DAYS": "1000",
        "CSSCERT_NODE_VALIDITY_DAYS": "10",
    }
    server = make_server(env=env)
    assert server.bootstrap["region"] == "ap-southeast-3"
    assert "ap-southeast-3" in server.first_start_output
    cert = x509.load_pem_x509_certificates(_get(server, server.token()).content)[0]
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert cert.subject.rfc4514_string() == "CN=Env Root,O=csscert tests"
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 1000
    out = server.data_dir.parent / "env-node"
    issued = json.loads(
        server.cli(
            "cert",
            "issue",
            "--project",
            server.project_id,
            "--name",
            "n",
            "--dns",
            "localhost",
            "--out",
            str(out),
            "--json",
        ).stdout
    )
    leaf = x509.load_pem_x509_certificates((out / "n.crt").read_bytes())[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 10
    assert issued["sans"] == ["localhost"]
    # CSSCERT_DATA_DIR replaces --data-dir; CLI flags win over the environment.
    plain_env = clean_env()
    shown = subprocess.run(
        [sys.executable, "-m", "csscert", "ca", "show", "--json"],
        env={**plain_env, "CSSCERT_DATA_DIR": str(server.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.data_dir.parent,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    bad = subprocess.run(
        [sys.executable, "-m", "csscert", "project", "list"],
        env={**plain_env, "CSSCERT_DATA_DIR": str(server.data_dir), "CSSCERT_CA_VALIDITY_DAYS": "many"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == EXIT_ERROR and "ca_validity_days" in bad.stderr and "Traceback" not in bad.stderr


def test_an_expiry_warning_window_past_any_date_is_refused_at_start(server: CsscertServer) -> None:
    env = clean_env(CSSCERT_CA_EXPIRY_WARNING_DAYS="1000000")
    result = run_csscert("--data-dir", str(server.data_dir), "ca", "show", env=env, timeout=60)
    assert result.returncode == EXIT_ERROR and "ca_expiry_warning_days" in result.stderr


def test_serve_after_preparing_the_data_dir_with_init(tmp_path: Path) -> None:
    """`init`, then projects and users, then the first `serve`: it serves what was prepared."""
    prepared = CsscertServer(data_dir=tmp_path / "data")
    initialised = json.loads(prepared.cli("init", "--json").stdout)
    assert initialised["created"] is True and initialised["data_dir"] == str(prepared.data_dir)
    assert json.loads(prepared.cli("init", "--json").stdout)["created"] is False  # idempotent
    extra = prepared.cli("project", "create", "extra").stdout.strip()
    prepared.cli("user", "create", "ops", "--project", "extra")
    prepared.start()
    try:
        assert prepared.project_id == initialised["project_id"]
        assert "first start" not in prepared.first_start_output  # init showed it already
        assert _get(prepared, prepared.token()).status_code == 200
        assert _get(prepared, prepared.token("ops", extra), extra).status_code == 200
    finally:
        prepared.stop()


def test_concurrent_first_inits_agree_on_one_master_key_and_ca(tmp_path: Path) -> None:
    """Three `init`s racing on an empty data directory: one master key (0600), one CA, one
    bootstrap user and access key, no debris."""
    data_dir = tmp_path / "data"
    plain_env = clean_env()
    command = [sys.executable, "-m", "csscert", "--data-dir", str(data_dir), "init", "--json"]
    procs = [
        subprocess.Popen(command, env=plain_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sorted(json.loads(out)["created"] for out, _ in outputs) == [False, False, True]
    server = CsscertServer(data_dir=data_dir)
    assert len(server.cli_json("ca", "list")) == 1
    assert len(server.cli_json("credential", "list")) == 1
    master = data_dir / "master.key"
    assert master.stat().st_mode & 0o777 == 0o600
    assert len(master.read_text().strip()) == 43  # 32 bytes, base64url without padding
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".master")) == []


def test_serve_on_a_busy_port_fails_clearly_before_writing(
    eu_de_server: CsscertServer, tmp_path: Path
) -> None:
    newcomer = CsscertServer(data_dir=tmp_path / "data")
    busy = newcomer.cli("serve", "--port", str(eu_de_server.port), check=False)  # eu_de_server listens there
    assert busy.returncode == EXIT_ERROR
    assert f"cannot listen on 127.0.0.1:{eu_de_server.port}" in busy.stderr and "Traceback" not in busy.stderr
    assert not newcomer.data_dir.exists()  # so the real first start still shows its banner
    zero = newcomer.cli("serve", "--port", "0", check=False)
    assert zero.returncode == EXIT_ERROR and "--port" in zero.stderr
    newcomer.start()
    try:
        assert "first start" in newcomer.first_start_output
    finally:
        newcomer.stop()


def test_broken_setups_get_one_clear_line(tmp_path: Path) -> None:
    """Whatever is wrong with the data directory or the database URL: a message, exit 1, no traceback."""
    corrupt = CsscertServer(data_dir=tmp_path / "corrupt")
    corrupt.data_dir.mkdir()
    (corrupt.data_dir / "csscert.db").write_bytes(b"this is not SQLite" * 300)
    (corrupt.data_dir / "master.key").write_text(generate_master_key() + "\n")
    bad_key = CsscertServer(data_dir=tmp_path / "bad-key")
    bad_key.data_dir.mkdir()
    (bad_key.data_dir / "master.key").write_text("not a key\n")
    cases = [
        (corrupt, {}, "database error: file is not a database"),
        (bad_key, {}, f"the master key in {bad_key.data_dir / 'master.key'}"),
        (CsscertServer(data_dir=tmp_path / "u1"), {"CSSCERT_DATABASE_URL": "nonsense"}, "database error"),
        (
            CsscertServer(data_dir=tmp_path / "u2"),
            {"CSSCERT_DATABASE_URL": "postgresql://u@127.0.0.1:1/x"},
            "database",
        ),
        (CsscertServer(data_dir=tmp_path / "u3"), {"CSSCERT_WORKERS": "0"}, "workers"),
    ]
    for index, (server, env, message) in enumerate(cases):
        server.env = env
        commands = [["project", "list"]]
        if index < 2:  # `serve` goes through the same start-up path; two cases show it
            commands.append(["serve", "--port", str(server.port)])
        for command in commands:
            result = server.cli(*command, check=False)
            assert result.returncode == EXIT_ERROR, (command, env, result.stderr)
            assert message in result.stderr, (command, env, result.stderr)
            assert "Traceback" not in result.stderr
