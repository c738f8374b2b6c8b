"""Revocation takes effect on the very next request: users, access keys, tokens, token keys.

Each check first warms the server's caches with successful requests, then changes the state
with the real CLI (another process, as an operator would), then expects the next requests to
be refused, with no waiting in between.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import CsscertServer, ServerFactory
from identity_helpers import Account, new_account, sdk_sign

_REPEAT = 6  # new connections, spread by the kernel over the workers of a multi-worker server


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def multi(make_server: ServerFactory) -> CsscertServer:
    """A private server with two workers: every worker must see a revocation at once."""
    return make_server(serve_args=["--workers", "2"])


def _get(client: httpx.Client, url: str, headers: dict[str, str]) -> int:
    """One request on a connection of its own (a kept-alive one would always reach the same worker)."""
    return client.get(url, headers={**headers, "Connection": "close"}).status_code


def _by_token(client: httpx.Client, server: CsscertServer, token: str, project_id: str) -> list[int]:
    return [_get(client, server.download_url(project_id), {"X-Auth-Token": token}) for _ in range(_REPEAT)]


def _by_key(
    client: httpx.Client, server: CsscertServer, access: str, secret: str, project_id: str
) -> list[int]:
    statuses = []
    for _ in range(_REPEAT):
        url, headers = sdk_sign(
            access,
            secret,
            "GET",
            server.download_url(project_id),
            {"Content-Type": "application/json", "X-Project-Id": project_id},
        )
        statuses.append(_get(client, url, headers))
    return statuses


def _fresh(server: CsscertServer, prefix: str) -> tuple[Account, str]:
    account = new_account(server, prefix=prefix)
    return account, server.token(user=account.user, project=account.project_id)


OK = [200] * _REPEAT
REFUSED = [401] * _REPEAT


def test_user_disable_stops_tokens_and_keys_and_enable_does_not_revive_old_tokens(
    multi: CsscertServer, client: httpx.Client
) -> None:
    account, token = _fresh(multi, "dis")
    assert _by_token(client, multi, token, account.project_id) == OK
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == OK
    multi.cli("user", "disable", account.user)
    assert _by_token(client, multi, token, account.project_id) == REFUSED
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == REFUSED
    multi.cli("user", "enable", account.user)
    # Keys work again; tokens minted before the disable stay dead (as in Keystone).
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == OK
    assert _by_token(client, multi, token, account.project_id) == REFUSED
    new_token = multi.token(user=account.user, project=account.project_id)
    assert _by_token(client, multi, new_token, account.project_id) == OK


def test_user_delete_stops_tokens_and_keys(multi: CsscertServer, client: httpx.Client) -> None:
    account, token = _fresh(multi, "del")
    assert _by_token(client, multi, token, account.project_id) == OK
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == OK
    multi.cli("user", "delete", account.user)
    assert _by_token(client, multi, token, account.project_id) == REFUSED
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == REFUSED
    assert all(k["access"] != account.access for k in multi.cli_json("credential", "list"))


def test_credential_disable_and_delete(multi: CsscertServer, client: httpx.Client) -> None:
    account, token = _fresh(multi, "cred")
    spare = multi.cli_json("credential", "create", "--user", account.user)
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == OK
    multi.cli("credential", "disable", account.access)
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == REFUSED
    # Only that key: the user's other key and tokens are untouched.
    assert _by_key(client, multi, spare["access"], spare["secret"], account.project_id) == OK
    assert _by_token(client, multi, token, account.project_id) == OK
    multi.cli("credential", "enable", account.access)
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == OK
    multi.cli("credential", "delete", account.access)
    assert _by_key(client, multi, account.access, account.secret, account.project_id) == REFUSED
    missing = multi.cli("credential", "delete", account.access, check=False)
    assert missing.returncode != 0 and "no access key" in missing.stderr


def test_token_revoke_through_the_cli_and_through_stdin(multi: CsscertServer, client: httpx.Client) -> None:
    account, token = _fresh(multi, "rev")
    second = multi.token(user=account.user, project=account.project_id)
    assert _by_token(client, multi, token, account.project_id) == OK
    multi.cli("token", "revoke", token)
    assert _by_token(client, multi, token, account.project_id) == REFUSED
    assert _by_token(client, multi, second, account.project_id) == OK  # only that token
    multi.cli("token", "revoke", input=second + "\n")
    assert _by_token(client, multi, second, account.project_id) == REFUSED
    response = client.get(multi.download_url(account.project_id), headers={"X-Auth-Token": second})
    assert "revoked" in response.json()["error_msg"]
    bad = multi.cli("token", "revoke", "not-a-token", check=False)
    assert bad.returncode != 0 and "token is invalid" in bad.stderr


def test_password_change_revokes_the_users_tokens(multi: CsscertServer, client: httpx.Client) -> None:
    account, token = _fresh(multi, "pw")
    assert _by_token(client, multi, token, account.project_id) == OK
    multi.cli("user", "set-password", account.user, input="a-brand-new-password\n")
    assert _by_token(client, multi, token, account.project_id) == REFUSED
    login = client.post(
        multi.url + "/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": account.user,
                            "domain": {"name": multi.bootstrap["domain_name"]},
                            "password": "a-brand-new-password",
                        }
                    },
                },
                "scope": {"project": {"id": account.project_id}},
            }
        },
    )
    assert login.status_code == 201, login.text
    assert _by_token(client, multi, login.headers["x-subject-token"], account.project_id) == OK


def test_rotate_token_keys_keeps_recent_keys_and_drops_old_ones(
    make_server: ServerFactory, client: httpx.Client
) -> None:
    # A server of its own: rotating with --keep 1 voids every token in it.
    private = make_server()
    pid = private.project_id
    t0 = private.token()
    assert _by_token(client, private, t0, pid) == OK
    private.cli("token", "rotate-keys", "--keep", "2")
    t1 = private.token()
    assert _by_token(client, private, t0, pid) == OK  # its key is still kept
    assert _by_token(client, private, t1, pid) == OK
    private.cli("token", "rotate-keys", "--keep", "1")
    assert _by_token(client, private, t0, pid) == REFUSED
    assert _by_token(client, private, t1, pid) == REFUSED
    t2 = private.token()
    assert _by_token(client, private, t2, pid) == OK
    # The Keystone API mints with the new key too, and AK/SK is unaffected by token keys.
    boot = private.bootstrap
    assert _by_key(client, private, boot["access_key"], boot["secret_key"], pid) == OK
    # Survives a restart: keys live in the database, not in the process.
    private.restart()
    assert _by_token(client, private, t2, pid) == OK
    assert _by_token(client, private, t0, pid) == REFUSED
