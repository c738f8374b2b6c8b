"""Secret keys and passwords are never kept or shown in clear: not in the database, logs or listings."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from support.accounts import new_account
from support.keystone import password_login
from support.server import CsscertServer
from support.signing import sdk_sign


def _encodings(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def _files_holding(paths: list[Path], secret: str) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        if any(form in data for form in _encodings(secret)):
            found.append(path.name)
    return found


def test_no_secret_key_or_password_in_the_database_or_logs(server: CsscertServer) -> None:
    account = new_account(server, password=True, prefix="sec")
    assert account.password is not None
    second_key = server.cli_json("credential", "create", "--user", account.user)
    # Use them, successfully and not, so that every code path that might log has run.
    url, headers = sdk_sign(
        account.access,
        account.secret,
        "GET",
        server.download_url(account.project_id),
        {"X-Project-Id": account.project_id},
    )
    assert httpx.get(url, headers=headers).status_code == 200
    url, headers = sdk_sign(
        account.access, account.secret[::-1], "GET", server.download_url(account.project_id)
    )
    assert httpx.get(url, headers=headers).status_code == 401
    for password in (account.password, account.password + "-wrong"):
        body = password_login(password, user=account.user, domain=server.bootstrap["domain_name"])
        login = httpx.post(server.url + "/v3/auth/tokens", json=body)
        assert login.status_code == (201 if password == account.password else 401), login.text
    server.cli("user", "set-password", account.user, input=account.password + "-2\n")

    database = sorted(server.data_dir.glob("csscert.db*"))  # the file and its WAL/SHM companions
    assert any(p.name == "csscert.db" for p in database)
    assert database[0].stat().st_size > 0
    everything_but_the_bootstrap_file = [
        p for p in server.data_dir.iterdir() if p.is_file() and p.name != "bootstrap-credentials.json"
    ]
    logs = list(server.data_dir.parent.glob("server-*.log"))
    assert logs, "the fixture writes the server's output next to the data directory"
    boot = server.bootstrap
    for secret in (account.secret, second_key["secret"], account.password, account.password + "-2"):
        assert _files_holding(everything_but_the_bootstrap_file + logs, secret) == []
    for secret in (boot["secret_key"], boot["password"]):
        assert _files_holding(database + logs, secret) == []
    # The sealed form is really there (the test looks at the right files): the access key is
    # stored in clear as the record's id.
    assert any(account.access.encode() in p.read_bytes() for p in database)


def test_listings_never_show_secrets_or_password_hashes(server: CsscertServer) -> None:
    account = new_account(server, password=True, prefix="lst")
    assert account.password is not None
    listed_keys = server.cli("credential", "list", "--json").stdout
    listed_users = server.cli("user", "list", "--json").stdout
    assert account.access in listed_keys and account.user in listed_users
    for text in (listed_keys, listed_users):
        assert account.secret not in text
        assert account.password not in text
        assert "$argon2" not in text


def test_generated_keys_have_the_clouds_shape_and_are_fresh(server: CsscertServer) -> None:
    boot = server.bootstrap
    keys = [server.cli_json("credential", "create", "--user", boot["user_name"]) for _ in range(2)]
    for key in keys:
        assert len(key["access"]) == 20 and key["access"].isalnum() and key["access"] == key["access"].upper()
        assert len(key["secret"]) == 40 and key["secret"].isalnum()
    assert len({k["access"] for k in keys} | {boot["access_key"]}) == 3
    assert len({k["secret"] for k in keys} | {boot["secret_key"]}) == 3
