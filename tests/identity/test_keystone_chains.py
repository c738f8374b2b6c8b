"""Audit chains and the member routes over HTTP, against the real server.

A token got with a token dies with every token it came from (``DELETE /v3/auth/tokens`` and
``csscert token revoke`` alike), tokens minted before chains existed keep working, a chain has a
bound, ``/v3/users/{id}/projects`` answers only the caller's own user (token or AK/SK), and the
Keystone routes carry Keystone's request id and ``Vary`` while the CSS routes keep theirs.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from contextlib import closing

import httpx
import pytest
from cryptography.fernet import Fernet
from support.accounts import Account, new_account
from support.server import CsscertServer
from support.signing import sdk_sign

from csscert.identity.tokens import MAX_AUDIT_CHAIN
from csscert.sealing import Sealer, load_master_key

KEYSTONE_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def chain_account(server: CsscertServer) -> Account:
    """An account with a password: chains start with a password login."""
    return new_account(server, password=True, prefix="chain")


def _login(
    client: httpx.Client, server: CsscertServer, identity: dict[str, object], scope: object = None
) -> str:
    auth: dict[str, object] = {"identity": identity}
    if scope is not None:
        auth["scope"] = scope
    response = client.post(f"{server.url}/v3/auth/tokens", json={"auth": auth})
    assert response.status_code == 201, response.text
    return str(response.headers["x-subject-token"])


def _password(server: CsscertServer, account: Account) -> dict[str, object]:
    user = {
        "name": account.user,
        "domain": {"name": server.bootstrap["domain_name"]},
        "password": account.password,
    }
    return {"methods": ["password"], "password": {"user": user}}


def _rescope(client: httpx.Client, server: CsscertServer, token: str, account: Account) -> str:
    return _login(
        client,
        server,
        {"methods": ["token"], "token": {"id": token}},
        {"project": {"id": account.project_id}},
    )


def _validate(client: httpx.Client, server: CsscertServer, caller: str, subject: str) -> httpx.Response:
    return client.get(
        f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": caller, "X-Subject-Token": subject}
    )


def test_revoking_any_token_of_a_chain_refuses_every_token_got_from_it(
    server: CsscertServer, chain_account: Account, http_client: httpx.Client
) -> None:
    caller = _login(
        http_client, server, _password(server, chain_account), {"project": {"id": chain_account.project_id}}
    )
    root = _login(http_client, server, _password(server, chain_account))
    child = _rescope(http_client, server, root, chain_account)
    grandchild = _rescope(http_client, server, child, chain_account)
    great = _rescope(http_client, server, grandchild, chain_account)
    bodies = {
        name: _validate(http_client, server, caller, t).json()["token"]
        for name, t in [("root", root), ("great", great)]
    }
    # Keystone's view of the chain: [own, first], whatever the depth.
    assert bodies["great"]["audit_ids"][1] == bodies["root"]["audit_ids"][0]
    assert len(bodies["great"]["audit_ids"]) == 2

    revoked = http_client.delete(
        f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": caller, "X-Subject-Token": grandchild}
    )
    assert revoked.status_code == 204
    statuses = {name: _validate(http_client, server, caller, t).status_code for name, t in
                [("root", root), ("child", child), ("grandchild", grandchild), ("great", great)]}  # fmt: skip
    assert statuses == {"root": 200, "child": 200, "grandchild": 404, "great": 404}
    download = http_client.get(server.download_url(chain_account.project_id), headers={"X-Auth-Token": great})
    assert (download.status_code, download.json()["error_code"]) == (401, "APIGW.0301")
    assert (
        http_client.get(
            server.download_url(chain_account.project_id), headers={"X-Auth-Token": child}
        ).status_code
        == 200
    )

    # The CLI revokes the same way: the root takes what is left of the chain with it.
    server.cli("token", "revoke", input=root + "\n")
    assert _validate(http_client, server, caller, child).status_code == 404
    assert (
        http_client.get(
            server.download_url(chain_account.project_id), headers={"X-Auth-Token": child}
        ).status_code
        == 401
    )
    assert _validate(http_client, server, caller, caller).status_code == 200  # an unrelated token lives on


def test_a_token_minted_before_audit_chains_still_works_and_can_be_revoked(
    server: CsscertServer, chain_account: Account, http_client: httpx.Client
) -> None:
    """A 7-field claims record (no chain), sealed with the server's own token key."""
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db:
        key_id, key_sealed = db.execute("SELECT id, key_sealed FROM fernet_keys WHERE is_primary").fetchone()
        domain_id = db.execute(
            "SELECT domain_id FROM users WHERE id = ?", (chain_account.user_id,)
        ).fetchone()[0]
    key = Sealer(load_master_key(None, server.data_dir, create=False)).open(key_sealed, f"fernet:{key_id}")
    issued = round(time.time() - 1, 3)  # the server runs on this machine's clock
    old = [
        chain_account.user_id,
        domain_id,
        chain_account.project_id,
        ["password"],
        secrets.token_urlsafe(16),
        issued,
        int(issued) + 3600,
    ]
    token = Fernet(key).encrypt_at_time(json.dumps(old).encode(), int(issued)).decode()
    url = server.download_url(chain_account.project_id)
    assert http_client.get(url, headers={"X-Auth-Token": token}).status_code == 200
    body = _validate(http_client, server, token, token).json()["token"]
    assert body["audit_ids"] == [old[4]]
    child = _rescope(http_client, server, token, chain_account)
    child_ids = _validate(http_client, server, child, child).json()["token"]["audit_ids"]
    assert len(child_ids) == 2 and child_ids[1] == old[4]
    server.cli("token", "revoke", token)
    assert http_client.get(url, headers={"X-Auth-Token": token}).status_code == 401
    assert http_client.get(url, headers={"X-Auth-Token": child}).status_code == 401


def test_a_chain_longer_than_the_bound_is_refused_with_a_way_out(
    server: CsscertServer, chain_account: Account, http_client: httpx.Client
) -> None:
    token = _login(http_client, server, _password(server, chain_account))
    for _ in range(MAX_AUDIT_CHAIN - 1):
        token = _rescope(http_client, server, token, chain_account)
    refused = http_client.post(
        f"{server.url}/v3/auth/tokens",
        json={"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}},
    )
    assert refused.status_code == 403, refused.text
    assert "log in again" in refused.json()["error"]["message"]
    # The last token of the chain still works; a password login starts a new chain.
    assert (
        http_client.get(
            server.download_url(chain_account.project_id), headers={"X-Auth-Token": token}
        ).status_code
        == 200
    )
    _rescope(
        http_client, server, _login(http_client, server, _password(server, chain_account)), chain_account
    )


def test_user_projects_answers_the_callers_own_user_only(
    server: CsscertServer, chain_account: Account, http_client: httpx.Client
) -> None:
    other = new_account(server, prefix="chainother")
    own_url = f"{server.url}/v3/users/{chain_account.user_id}/projects"
    url, headers = sdk_sign(chain_account.access, chain_account.secret, "GET", own_url)
    response = http_client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["projects"]] == [chain_account.project_id]
    assert response.json()["projects"][0]["tags"] == [] and response.json()["projects"][0]["options"] == {}
    token = _login(http_client, server, _password(server, chain_account))
    assert http_client.get(own_url + "/", headers={"X-Auth-Token": token}).status_code == 200
    for user_id in (other.user_id, "0" * 32, "not-an-id"):
        denied = http_client.get(f"{server.url}/v3/users/{user_id}/projects", headers={"X-Auth-Token": token})
        assert denied.status_code == 403, denied.text
        assert "identity:list_user_projects" in denied.json()["error"]["message"]
    assert http_client.get(own_url).status_code == 401


def test_keystone_routes_carry_keystones_request_id_and_vary_and_css_routes_keep_theirs(
    server: CsscertServer, http_client: httpx.Client, admin_token: str
) -> None:
    for method, path, headers in [
        ("GET", "/v3", {}),
        ("GET", "/v3/projects", {}),  # 401
        ("POST", "/v3/auth/tokens", {}),  # 400
        ("PUT", "/v3/auth/tokens", {}),  # 405
        ("GET", "/v3/no-such-route", {}),  # 404
        ("GET", "/v3/auth/catalog", {"X-Auth-Token": admin_token}),
    ]:
        response = http_client.request(method, server.url + path, headers=headers)
        request_id = response.headers["x-openstack-request-id"]
        assert KEYSTONE_ID.fullmatch(request_id), (path, request_id)
        assert response.headers["x-request-id"] == request_id, path
        assert response.headers["vary"] == "X-Auth-Token", path
    for path in (f"/v1.0/{server.project_id}/cer/download", "/nope", "/healthz"):
        response = http_client.get(server.url + path, headers={"X-Auth-Token": admin_token})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), path
        assert "x-openstack-request-id" not in response.headers, path
        assert "x-auth-token" not in response.headers.get("vary", "").lower(), path
