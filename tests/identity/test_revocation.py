"""Revocation takes effect on the very next request: users, access keys, tokens, token keys.

Each check first warms the server's caches with successful requests, then changes the state
with the real CLI (another process, as an operator would), then expects the next requests to
be refused, with no waiting in between.
"""

from __future__ import annotations

import httpx
import pytest
from support.accounts import Account, new_account
from support.keystone import password_login
from support.server import EXIT_ERROR, CsscertServer, ServerFactory
from support.signing import sdk_sign

_REPEAT = 6  # new connections, spread by the kernel over the workers of a multi-worker server


@pytest.fixture(scope="module")
def two_worker_server(make_server: ServerFactory) -> CsscertServer:
    """A private server with two workers: every worker must see a revocation at once."""
    return make_server(serve_args=["--workers", "2"])


def _get(http_client: httpx.Client, url: str, headers: dict[str, str]) -> int:
    """One request on a connection of its own (a kept-alive one would always reach the same worker)."""
    return http_client.get(url, headers={**headers, "Connection": "close"}).status_code


def _by_token(http_client: httpx.Client, server: CsscertServer, token: str, project_id: str) -> list[int]:
    return [
        _get(http_client, server.download_url(project_id), {"X-Auth-Token": token}) for _ in range(_REPEAT)
    ]


def _by_key(
    http_client: httpx.Client, server: CsscertServer, access: str, secret: str, project_id: str
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
        statuses.append(_get(http_client, url, headers))
    return statuses


def _fresh(server: CsscertServer, prefix: str) -> tuple[Account, str]:
    account = new_account(server, prefix=prefix)
    return account, server.token(user=account.user, project=account.project_id)


OK = [200] * _REPEAT
REFUSED = [401] * _REPEAT


def test_user_disable_stops_tokens_and_keys_and_enable_does_not_revive_old_tokens(
    two_worker_server: CsscertServer, http_client: httpx.Client
) -> None:
    account, token = _fresh(two_worker_server, "dis")
    assert _by_token(http_client, two_worker_server, token, account.project_id) == OK
    assert _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == OK
    two_worker_server.cli("user", "disable", account.user)
    assert _by_token(http_client, two_worker_server, token, account.project_id) == REFUSED
    assert (
        _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == REFUSED
    )
    two_worker_server.cli("user", "enable", account.user)
    # Keys work again; tokens minted before the disable stay dead (as in Keystone).
    assert _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == OK
    assert _by_token(http_client, two_worker_server, token, account.project_id) == REFUSED
    new_token = two_worker_server.token(user=account.user, project=account.project_id)
    assert _by_token(http_client, two_worker_server, new_token, account.project_id) == OK


def test_user_delete_stops_tokens_and_keys(
    two_worker_server: CsscertServer, http_client: httpx.Client
) -> None:
    account, token = _fresh(two_worker_server, "del")
    assert _by_token(http_client, two_worker_server, token, account.project_id) == OK
    assert _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == OK
    two_worker_server.cli("user", "delete", account.user)
    assert _by_token(http_client, two_worker_server, token, account.project_id) == REFUSED
    assert (
        _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == REFUSED
    )
    assert all(k["access"] != account.access for k in two_worker_server.cli_json("credential", "list"))


def test_credential_disable_and_delete_stop_only_that_key(
    two_worker_server: CsscertServer, http_client: httpx.Client
) -> None:
    account, token = _fresh(two_worker_server, "cred")
    spare = two_worker_server.cli_json("credential", "create", "--user", account.user)
    assert _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == OK
    two_worker_server.cli("credential", "disable", account.access)
    assert (
        _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == REFUSED
    )
    # Only that key: the user's other key and tokens are untouched.
    assert _by_key(http_client, two_worker_server, spare["access"], spare["secret"], account.project_id) == OK
    assert _by_token(http_client, two_worker_server, token, account.project_id) == OK
    two_worker_server.cli("credential", "enable", account.access)
    assert _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == OK
    two_worker_server.cli("credential", "delete", account.access)
    assert (
        _by_key(http_client, two_worker_server, account.access, account.secret, account.project_id) == REFUSED
    )
    missing = two_worker_server.cli("credential", "delete", account.access, check=False)
    assert missing.returncode == EXIT_ERROR and "no access key" in missing.stderr


def test_token_revoke_through_the_cli_and_through_stdin(
    two_worker_server: CsscertServer, http_client: httpx.Client
) -> None:
    account, token = _fresh(two_worker_server, "rev")
    second = two_worker_server.token(user=account.user, project=account.project_id)
    assert _by_token(http_client, two_worker_server, token, account.project_id) == OK
    two_worker_server.cli("token", "revoke", token)
    assert _by_token(http_client, two_worker_server, token, account.project_id) == REFUSED
    assert _by_token(http_client, two_worker_server, second, account.project_id) == OK  # only that token
    two_worker_server.cli("token", "revoke", input=second + "\n")
    assert _by_token(http_client, two_worker_server, second, account.project_id) == REFUSED
    response = http_client.get(
        two_worker_server.download_url(account.project_id), headers={"X-Auth-Token": second}
    )
    assert "revoked" in response.json()["error_msg"]
    bad = two_worker_server.cli("token", "revoke", "not-a-token", check=False)
    assert bad.returncode == EXIT_ERROR and "token is invalid" in bad.stderr


def test_password_change_revokes_the_users_tokens(
    two_worker_server: CsscertServer, http_client: httpx.Client
) -> None:
    account, token = _fresh(two_worker_server, "pw")
    assert _by_token(http_client, two_worker_server, token, account.project_id) == OK
    two_worker_server.cli("user", "set-password", account.user, input="a-brand-new-password\n")
    assert _by_token(http_client, two_worker_server, token, account.project_id) == REFUSED
    login = http_client.post(
        two_worker_server.url + "/v3/auth/tokens",
        json=password_login(
            "a-brand-new-password",
            user=account.user,
            domain=two_worker_server.bootstrap["domain_name"],
            project_id=account.project_id,
        ),
    )
    assert login.status_code == 201, login.text
    assert (
        _by_token(http_client, two_worker_server, login.headers["x-subject-token"], account.project_id) == OK
    )


def test_rotate_token_keys_keeps_recent_keys_and_drops_old_ones(
    make_server: ServerFactory, http_client: httpx.Client
) -> None:
    # A server of its own: rotating with --keep 1 voids every token in it.
    private = make_server()
    pid = private.project_id
    t0 = private.token()
    assert _by_token(http_client, private, t0, pid) == OK
    private.cli("token", "rotate-keys", "--keep", "2")
    t1 = private.token()
    assert _by_token(http_client, private, t0, pid) == OK  # its key is still kept
    assert _by_token(http_client, private, t1, pid) == OK
    private.cli("token", "rotate-keys", "--keep", "1")
    assert _by_token(http_client, private, t0, pid) == REFUSED
    assert _by_token(http_client, private, t1, pid) == REFUSED
    t2 = private.token()
    assert _by_token(http_client, private, t2, pid) == OK
    # The Keystone API mints with the new key too, and AK/SK is unaffected by token keys.
    boot = private.bootstrap
    assert _by_key(http_client, private, boot["access_key"], boot["secret_key"], pid) == OK
    # Survives a restart: keys live in the database, not in the process.
    private.restart()
    assert _by_token(http_client, private, t2, pid) == OK
    assert _by_token(http_client, private, t0, pid) == REFUSED
