"""otcextensions / openstacksdk / keystoneauth1, unchanged, against csscert's Keystone subset.

The connection logs in with ``POST /v3/auth/tokens`` (password method, project scope by
name), finds the CSS endpoint in the token's catalog and downloads the certificate with
``conn.css.download_certificate()``, which writes ``CloudSearchService.cer`` in the current
directory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest
from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions
from otcextensions import sdk as otc_sdk
from support.server import CsscertServer

# openstacksdk's own deprecation notices (InfluxDB support, a proxy argument), not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for InfluxDB"),
    pytest.mark.filterwarnings("ignore:The 'service_type' parameter"),
]


@dataclass(frozen=True)
class PasswordUser:
    name: str
    password: str
    project_id: str
    project_name: str
    domain_name: str
    region: str


@pytest.fixture(scope="module")
def otc_user(server: CsscertServer) -> PasswordUser:
    tag = secrets.token_hex(4)
    project = server.cli_json("project", "create", f"otc{tag}")
    name, password = f"otc-user-{tag}", secrets.token_urlsafe(18)
    server.cli("user", "create", name, "--project", project["id"], "--password-stdin", input=password + "\n")
    bootstrap = server.bootstrap
    return PasswordUser(
        name, password, project["id"], project["name"], bootstrap["domain_name"], bootstrap["region"]
    )


def _connect(server: CsscertServer, user: PasswordUser, **overrides: Any) -> Any:
    """An openstack Connection with otcextensions registered (its ``css`` proxy is added at run time)."""
    options: dict[str, Any] = {
        "auth_url": server.url + "/v3",
        "username": user.name,
        "password": user.password,
        "project_name": user.project_name,
        "user_domain_name": user.domain_name,
        "project_domain_name": user.domain_name,
        "region_name": user.region,
        "load_yaml_config": False,
        "load_envvars": False,
    }
    options.update(overrides)
    conn = openstack.connect(**options)
    otc_sdk.register_otc_extensions(conn)
    return conn


def _served(server: CsscertServer, token: str, project_id: str) -> bytes:
    response = httpx.get(server.download_url(project_id), headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """download_certificate() writes into the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_download_certificate_writes_the_served_certificate(
    server: CsscertServer, otc_user: PasswordUser, in_tmp: Path
) -> None:
    conn = _connect(server, otc_user)
    conn.css.download_certificate()
    written = (in_tmp / "CloudSearchService.cer").read_bytes()
    assert written == _served(server, conn.auth_token, otc_user.project_id)
    assert written.startswith(b"-----BEGIN CERTIFICATE-----")
    # The catalog gave the endpoint, already ending in the project id (otcextensions adds nothing).
    endpoint = conn.css.get_endpoint()
    assert endpoint == f"{server.url}/v1.0/{otc_user.project_id}"


def test_project_scope_by_id_and_an_explicit_filename(
    server: CsscertServer, otc_user: PasswordUser, in_tmp: Path
) -> None:
    conn = _connect(
        server, otc_user, project_name=None, project_domain_name=None, project_id=otc_user.project_id
    )
    conn.css.download_certificate(filename="mine.cer")
    assert (in_tmp / "mine.cer").read_bytes() == _served(server, conn.auth_token, otc_user.project_id)


@pytest.mark.parametrize("suffix", ["", "/"])
def test_auth_url_at_the_root_is_discovered(
    server: CsscertServer, otc_user: PasswordUser, in_tmp: Path, suffix: str
) -> None:
    """keystoneauth finds /v3 through the root's version list, as with a real Keystone."""
    conn = _connect(server, otc_user, auth_url=server.url + suffix)
    conn.css.download_certificate()
    written = (in_tmp / "CloudSearchService.cer").read_bytes()
    assert written == _served(server, conn.auth_token, otc_user.project_id)


def test_revoked_token_gets_401_and_a_fresh_token_works(
    server: CsscertServer, otc_user: PasswordUser, in_tmp: Path
) -> None:
    conn = _connect(server, otc_user)
    conn.css.download_certificate(filename="first.cer")
    old = conn.auth_token
    # Revoke it the Keystone way: the token's own user may revoke it.
    revoked = httpx.delete(
        f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": old, "X-Subject-Token": old}
    )
    assert revoked.status_code == 204

    # The very next request with that token is refused: seen through the same otcextensions
    # adapter with keystoneauth's automatic re-login switched off...
    response = conn.css.get("/cer/download", headers={"Accept": "*/*"}, allow_reauth=False)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert "revoked" in response.json()["error_msg"]
    # ... and by a client that only has that token.
    token_only = openstack.connect(
        auth_url=server.url + "/v3",
        auth_type="v3token",
        token=old,
        project_id=otc_user.project_id,
        region_name=otc_user.region,
        load_yaml_config=False,
        load_envvars=False,
    )
    # Logging in with a revoked token is Keystone's 404 (the token is not found), with the
    # request id keystoneauth quotes from x-openstack-request-id.
    with pytest.raises(sdk_exceptions.SDKException, match=r"HTTP 404.*Request-ID: req-[0-9a-f-]{36}"):
        otc_sdk.register_otc_extensions(token_only)

    # With re-login allowed (the default), keystoneauth gets a fresh token and the download works.
    conn.css.download_certificate(filename="second.cer")
    assert conn.auth_token != old
    assert (in_tmp / "second.cer").read_bytes() == (in_tmp / "first.cer").read_bytes()


def test_revocation_through_the_cli_also_takes_effect(
    server: CsscertServer, otc_user: PasswordUser, in_tmp: Path
) -> None:
    conn = _connect(server, otc_user)
    token = conn.auth_token
    assert conn.css.get("/cer/download", headers={"Accept": "*/*"}, allow_reauth=False).status_code == 200
    server.cli("token", "revoke", token)
    assert conn.css.get("/cer/download", headers={"Accept": "*/*"}, allow_reauth=False).status_code == 401


def test_wrong_password_is_a_keystone_401(server: CsscertServer, otc_user: PasswordUser) -> None:
    conn = openstack.connect(
        auth_url=server.url + "/v3",
        username=otc_user.name,
        password=otc_user.password + "x",
        project_name=otc_user.project_name,
        user_domain_name=otc_user.domain_name,
        project_domain_name=otc_user.domain_name,
        region_name=otc_user.region,
        load_yaml_config=False,
        load_envvars=False,
    )
    with pytest.raises(sdk_exceptions.SDKException, match=r"HTTP 401"):
        conn.authorize()


def test_project_the_user_is_not_granted_is_refused_at_login(
    server: CsscertServer, otc_user: PasswordUser
) -> None:
    other = server.cli_json("project", "create", f"otcother{secrets.token_hex(4)}")
    conn = openstack.connect(
        auth_url=server.url + "/v3",
        username=otc_user.name,
        password=otc_user.password,
        project_name=other["name"],
        user_domain_name=otc_user.domain_name,
        project_domain_name=otc_user.domain_name,
        region_name=otc_user.region,
        load_yaml_config=False,
        load_envvars=False,
    )
    with pytest.raises(sdk_exceptions.SDKException, match=r"HTTP 401"):
        conn.authorize()


def test_keystoneauth_session_sees_the_version_document_and_validates_tokens(
    server: CsscertServer, otc_user: PasswordUser
) -> None:
    """keystoneauth's own discovery and token validation calls against /v3."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=server.url + "/v3",
        username=otc_user.name,
        password=otc_user.password,
        user_domain_name=otc_user.domain_name,
        project_id=otc_user.project_id,
    )
    session = ks_session.Session(auth=auth)
    access = auth.get_access(session)
    assert access.project_id == otc_user.project_id
    assert access.username == otc_user.name
    assert access.service_catalog.url_for(service_type="css", interface="public") == (
        f"{server.url}/v1.0/{otc_user.project_id}"
    )
    identity = session.get_endpoint(service_type="identity", interface="public")
    assert identity is not None and identity.rstrip("/") == server.url + "/v3"
    # Validate the token with the token itself (GET /v3/auth/tokens), as a service would.
    checked = session.get(
        server.url + "/v3/auth/tokens",
        headers={"X-Subject-Token": access.auth_token},
        authenticated=True,
    )
    assert checked.json()["token"]["project"]["id"] == otc_user.project_id
    with pytest.raises(ksa_exceptions.Unauthorized):
        v3.Password(
            auth_url=server.url + "/v3",
            username=otc_user.name,
            password="not-the-password",
            user_domain_name=otc_user.domain_name,
            project_id=otc_user.project_id,
        ).get_access(ks_session.Session())
