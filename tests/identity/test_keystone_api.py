"""The Keystone v3 subset on the wire: /v3, /v3/auth/tokens, /v3/projects, /v3/auth/projects.

Bodies, statuses and headers are checked as Keystone clients read them, errors in Keystone's
``{"error": {"code", "title", "message"}}`` shape.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.keystone import password_login
from support.server import CsscertServer, ServerFactory
from support.signing import sdk_sign


@dataclass(frozen=True)
class KeystoneUser:
    name: str
    id: str
    password: str
    domain: str
    projects: dict[str, str]  # name -> id


@pytest.fixture(scope="module")
def ks_user(server: CsscertServer) -> KeystoneUser:
    tag = secrets.token_hex(4)
    projects = {}
    for suffix in ("ksa", "ksb"):
        made = server.cli_json("project", "create", f"{suffix}{tag}")
        projects[made["name"]] = made["id"]
    name, password = f"ks-user-{tag}", secrets.token_urlsafe(16)
    args = ["user", "create", name, "--json", "--password-stdin"]
    for pid in projects.values():
        args += ["--project", pid]
    made_user = server.cli(*args, input=password + "\n")
    return KeystoneUser(
        name, json.loads(made_user.stdout)["id"], password, server.bootstrap["domain_name"], projects
    )


def _login_body(user: KeystoneUser, **scope: str) -> dict[str, Any]:
    """``user``'s password login by name and domain, scoped by ``project_id`` or ``project_name``."""
    return password_login(user.password, user=user.name, domain=user.domain, **scope)


def _login(http_client: httpx.Client, server: CsscertServer, body: Any, query: str = "") -> httpx.Response:
    return http_client.post(f"{server.url}/v3/auth/tokens{query}", json=body)


def _keystone_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["title"], str) and error["title"]
    assert response.headers.get("x-request-id")
    return str(error["message"])


def _first(user: KeystoneUser) -> tuple[str, str]:
    return next(iter(user.projects.items()))


def test_v3_answers_the_keystone_version_document(server: CsscertServer, http_client: httpx.Client) -> None:
    response = http_client.get(server.url + "/v3")
    assert response.status_code == 200
    version = response.json()["version"]
    assert version["id"].startswith("v3") and version["status"] == "stable"
    assert {"rel": "self", "href": server.url + "/v3/"} in version["links"]
    assert http_client.head(server.url + "/v3/").status_code == 200
    _keystone_error(http_client.post(server.url + "/v3", json={}), 405)


def test_root_lists_the_identity_version_and_stays_a_health_check(
    server: CsscertServer, http_client: httpx.Client
) -> None:
    body = http_client.get(server.url + "/").json()
    assert body["status"] == "ok"
    (version,) = body["versions"]["values"]
    assert version["id"].startswith("v3") and version["status"] == "stable"
    assert {"rel": "self", "href": server.url + "/v3/"} in version["links"]


def test_password_login_scoped_by_project_name_and_domain(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    name, pid = _first(ks_user)
    before = dt.datetime.now(dt.UTC)
    response = _login(
        http_client,
        server,
        _login_body(ks_user, project_name=name),
    )
    assert response.status_code == 201, response.text
    token = response.headers["x-subject-token"]
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"]["name"] == ks_user.name and body["user"]["id"] == ks_user.id
    assert body["user"]["domain"]["name"] == ks_user.domain
    assert body["project"]["id"] == pid and body["project"]["name"] == name
    assert len(body["audit_ids"]) == 1
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=23, minutes=59) < expires - before <= dt.timedelta(hours=24, seconds=5)
    css = next(entry for entry in body["catalog"] if entry["type"] == "css")
    endpoint = css["endpoints"][0]
    assert endpoint["interface"] == "public" and endpoint["region"] == server.bootstrap["region"]
    assert endpoint["url"] == f"{server.url}/v1.0/{pid}"
    # The token downloads that project's certificate, and only that one.
    assert (
        http_client.get(endpoint["url"] + "/cer/download", headers={"X-Auth-Token": token}).status_code == 200
    )
    other = next(p for p in ks_user.projects.values() if p != pid)
    denied = http_client.get(server.download_url(other), headers={"X-Auth-Token": token})
    assert (denied.status_code, denied.json()["error_code"]) == (403, "CSS.0015")


def test_password_login_by_user_id_scoped_by_project_id(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    _, pid = _first(ks_user)
    response = _login(
        http_client, server, password_login(ks_user.password, user_id=ks_user.id, project_id=pid)
    )
    assert response.status_code == 201, response.text
    assert response.json()["token"]["project"]["id"] == pid
    nocatalog = _login(http_client, server, _login_body(ks_user, project_id=pid), query="?nocatalog")
    assert nocatalog.status_code == 201 and "catalog" not in nocatalog.json()["token"]


def test_unscoped_token_cannot_download(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    response = _login(http_client, server, _login_body(ks_user))
    assert response.status_code == 201
    assert "project" not in response.json()["token"]
    _, pid = _first(ks_user)
    denied = http_client.get(
        server.download_url(pid), headers={"X-Auth-Token": response.headers["x-subject-token"]}
    )
    assert (denied.status_code, denied.json()["error_code"]) == (403, "CSS.0015")


def test_token_method_rescopes_without_outliving_the_original(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    first = _login(http_client, server, _login_body(ks_user))
    original = first.json()["token"]
    _, pid = _first(ks_user)
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": first.headers["x-subject-token"]}},
            "scope": {"project": {"id": pid}},
        }
    }
    rescoped = _login(http_client, server, body)
    assert rescoped.status_code == 201, rescoped.text
    token = rescoped.json()["token"]
    assert token["project"]["id"] == pid
    assert token["expires_at"] <= original["expires_at"]


@pytest.mark.parametrize(
    "change",
    ["wrong password", "unknown user", "unknown domain", "project not granted", "unknown project"],
)
def test_login_failures_are_keystone_401s(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser, change: str
) -> None:
    _, pid = _first(ks_user)
    user, domain, password = ks_user.name, ks_user.domain, ks_user.password
    project_id: str | None = pid
    project_name = None
    if change == "wrong password":
        password += "!"
    elif change == "unknown user":
        user = "nobody-" + secrets.token_hex(4)
    elif change == "unknown domain":
        domain = "no-such-domain"
    elif change == "project not granted":
        project_id = server.project_id
    else:
        project_id, project_name = None, "nowhere"
    body = password_login(
        password,
        user=user,
        domain=domain,
        project_id=project_id,
        project_name=project_name,
        project_domain=ks_user.domain,
    )
    response = _login(http_client, server, body)
    message = _keystone_error(response, 401)
    assert "requires authentication" in message
    assert response.headers["www-authenticate"].startswith("Keystone uri=")
    assert "x-subject-token" not in response.headers


def test_wrong_password_and_unknown_user_get_the_same_answer(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    wrong = _login(
        http_client, server, password_login("not-it-at-all", user=ks_user.name, domain=ks_user.domain)
    )
    ghost = "ghost-" + secrets.token_hex(4)
    unknown = _login(http_client, server, password_login("not-it-at-all", user=ghost, domain=ks_user.domain))
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"auth": {"identity": {"methods": []}}}',
        b'{"auth": {"identity": {"methods": ["totp"]}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "x"}}}}}',
        b'{"auth": {"identity": {"methods": ["password"], '
        b'"password": {"user": {"name": 5, "password": "p"}}}}}',
        b'{"auth": {"identity": {"methods": ["token"], "token": {}}}}',
    ],
)
def test_malformed_login_bodies_are_keystone_400s(
    server: CsscertServer, http_client: httpx.Client, body: bytes
) -> None:
    response = http_client.post(
        f"{server.url}/v3/auth/tokens", content=body, headers={"Content-Type": "application/json"}
    )
    _keystone_error(response, 400)


def _token_of(http_client: httpx.Client, server: CsscertServer, user: KeystoneUser) -> str:
    _, pid = _first(user)
    response = _login(http_client, server, _login_body(user, project_id=pid))
    assert response.status_code == 201
    return str(response.headers["x-subject-token"])


def test_validate_check_and_revoke_a_token(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    token = _token_of(http_client, server, ks_user)
    _, pid = _first(ks_user)
    url = f"{server.url}/v3/auth/tokens"
    both = {"X-Auth-Token": token, "X-Subject-Token": token}
    validated = http_client.get(url, headers=both)
    assert validated.status_code == 200
    assert validated.headers["x-subject-token"] == token
    assert validated.json()["token"]["project"]["id"] == pid
    checked = http_client.head(url, headers=both)
    assert checked.status_code == 200 and checked.content == b""
    assert http_client.delete(url, headers=both).status_code == 204
    # Revoked: gone from validation, refused by the download at once.
    other = _token_of(http_client, server, ks_user)
    assert (
        "could not find token"
        in _keystone_error(
            http_client.get(url, headers={"X-Auth-Token": other, "X-Subject-Token": token}), 404
        ).lower()
    )
    assert http_client.head(url, headers={"X-Auth-Token": other, "X-Subject-Token": token}).status_code == 404
    denied = http_client.get(server.download_url(pid), headers={"X-Auth-Token": token})
    assert (denied.status_code, denied.json()["error_code"]) == (401, "APIGW.0301")
    # ... and it cannot be used to authenticate the token API itself either.
    _keystone_error(http_client.get(url, headers={"X-Auth-Token": token, "X-Subject-Token": other}), 401)


def test_token_api_needs_both_tokens_and_only_the_owner(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    url = f"{server.url}/v3/auth/tokens"
    mine = _token_of(http_client, server, ks_user)
    _keystone_error(http_client.get(url, headers={"X-Subject-Token": mine}), 401)
    # No subject token: Keystone's policy has nothing to match, so 403 (not 400).
    _keystone_error(http_client.get(url, headers={"X-Auth-Token": mine}), 403)
    _keystone_error(http_client.get(url, headers={"X-Auth-Token": "garbage", "X-Subject-Token": mine}), 401)
    _keystone_error(http_client.put(url, headers={"X-Auth-Token": mine}), 405)
    # Someone else's token: neither validated nor revoked by this user.
    someone = server.token()  # csscert-admin's, for the bootstrap project
    _keystone_error(http_client.get(url, headers={"X-Auth-Token": mine, "X-Subject-Token": someone}), 403)
    _keystone_error(http_client.delete(url, headers={"X-Auth-Token": mine, "X-Subject-Token": someone}), 403)
    assert http_client.get(server.download_url(), headers={"X-Auth-Token": someone}).status_code == 200


def test_projects_by_name_with_aksk_and_with_a_token(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    key = server.cli_json("credential", "create", "--user", ks_user.name)
    name, pid = _first(ks_user)
    url, headers = sdk_sign(
        key["access"], key["secret"], "GET", server.url + "/v3/projects", query=[("name", name)]
    )
    response = http_client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    projects = response.json()["projects"]
    assert [(p["id"], p["name"], p["enabled"]) for p in projects] == [(pid, name, True)]
    assert projects[0]["domain_id"]
    url, headers = sdk_sign(
        key["access"], key["secret"], "GET", server.url + "/v3/projects", query=[("name", "no-such-project")]
    )
    assert http_client.get(url, headers=headers).json()["projects"] == []
    # Without a filter: every project the key's user is granted, and nothing else.
    url, headers = sdk_sign(key["access"], key["secret"], "GET", server.url + "/v3/projects")
    assert {p["id"] for p in http_client.get(url, headers=headers).json()["projects"]} == set(
        ks_user.projects.values()
    )
    # A project-scoped token sees its own project.
    token = _token_of(http_client, server, ks_user)
    scoped = http_client.get(
        f"{server.url}/v3/projects", params={"name": name}, headers={"X-Auth-Token": token}
    )
    assert [p["id"] for p in scoped.json()["projects"]] == [pid]


def test_auth_projects_lists_every_project_the_user_may_scope_to(
    server: CsscertServer, http_client: httpx.Client, ks_user: KeystoneUser
) -> None:
    token = _token_of(http_client, server, ks_user)
    response = http_client.get(f"{server.url}/v3/auth/projects", headers={"X-Auth-Token": token})
    assert response.status_code == 200
    assert {p["id"] for p in response.json()["projects"]} == set(ks_user.projects.values())


@pytest.mark.parametrize("path", ["/v3/projects", "/v3/auth/projects", "/v3/projects?name=local-1"])
def test_project_listing_needs_authentication(
    server: CsscertServer, http_client: httpx.Client, path: str
) -> None:
    _keystone_error(http_client.get(server.url + path), 401)
    _keystone_error(http_client.get(server.url + path, headers={"X-Auth-Token": "not-a-token"}), 401)


def test_unknown_keystone_paths_are_keystone_404s(server: CsscertServer, http_client: httpx.Client) -> None:
    _keystone_error(http_client.get(server.url + "/v3/users"), 404)


def test_public_url_is_what_the_catalog_advertises(
    make_server: ServerFactory, http_client: httpx.Client
) -> None:
    public = "https://css.example.test/behind/proxy"
    private = make_server(serve_args=["--public-url", public + "/"])
    boot = private.bootstrap
    body = password_login(
        boot["password"],
        user=boot["user_name"],
        domain=boot["domain_name"],
        project_name=boot["project_name"],
    )
    response = http_client.post(private.url + "/v3/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    urls = {entry["type"]: entry["endpoints"][0]["url"] for entry in response.json()["token"]["catalog"]}
    assert urls["css"] == f"{public}/v1.0/{boot['project_id']}"
    assert urls["identity"] == f"{public}/v3"
    assert http_client.get(private.url + "/v3").json()["version"]["links"][0]["href"] == public + "/v3/"
