"""The official Huawei Cloud Python SDK (huaweicloudsdkcss + huaweicloudsdkcore), unchanged, against csscert.

Every request here is built, signed (SDK-HMAC-SHA256) and sent by the SDK itself; the only
knob turned is what a user can turn: credentials, endpoint, region, IAM endpoint and the
client's ``preset_headers`` (which the SDK's signer honours for ``X-Sdk-Date``).
"""

from __future__ import annotations

import datetime as dt
import secrets

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, SdkException
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkcss.v1 import CssClient, DownloadCertRequest
from support.accounts import Account, new_account
from support.server import CsscertServer


def _client(server: CsscertServer, credentials: BasicCredentials) -> CssClient:
    return CssClient.new_builder().with_credentials(credentials).with_endpoint(server.url).build()


def _served(server: CsscertServer, account: Account) -> bytes:
    """The certificate as csscert serves it to a token holder (the reference bytes)."""
    project_id = account.project_id
    token = server.token(user=account.user, project=project_id)
    response = httpx.get(server.download_url(project_id), headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response.content


def _refused(client: CssClient) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as info:
        client.download_cert(DownloadCertRequest())
    return info.value


def test_download_cert_returns_the_served_pem_in_raw_content(server: CsscertServer, account: Account) -> None:
    client = _client(server, BasicCredentials(account.access, account.secret, account.project_id))
    response = client.download_cert(DownloadCertRequest())
    assert response.status_code == 200
    assert response.raw_content == _served(server, account)
    assert response.raw_content.startswith(b"-----BEGIN CERTIFICATE-----\n")
    # The body is a file stream, not JSON: the SDK leaves the model field empty.
    assert response.file is None


def test_wrong_secret_key_is_401_apigw_0301(server: CsscertServer, account: Account) -> None:
    wrong = account.secret[:-1] + ("A" if account.secret[-1] != "A" else "B")
    error = _refused(_client(server, BasicCredentials(account.access, wrong, account.project_id)))
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    assert error.error_msg.startswith("Incorrect IAM authentication information")
    assert error.request_id  # read from X-Request-Id


def test_disabled_key_is_401_and_enabling_it_again_works(server: CsscertServer, account: Account) -> None:
    key = server.cli_json("credential", "create", "--user", account.user)
    credentials = BasicCredentials(key["access"], key["secret"], account.project_id)
    client = _client(server, credentials)
    assert client.download_cert(DownloadCertRequest()).status_code == 200
    server.cli("credential", "disable", key["access"])
    error = _refused(client)
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    server.cli("credential", "enable", key["access"])
    assert client.download_cert(DownloadCertRequest()).status_code == 200


@pytest.mark.parametrize("offset_minutes", [-16, 16, -60 * 24 * 365])
def test_stale_or_future_x_sdk_date_is_401(
    server: CsscertServer, account: Account, offset_minutes: int
) -> None:
    client = _client(server, BasicCredentials(account.access, account.secret, account.project_id))
    sdk_date = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=offset_minutes)).strftime("%Y%m%dT%H%M%SZ")
    # The SDK's signer signs with an X-Sdk-Date already on the request instead of "now".
    client.preset_headers = {"X-Sdk-Date": sdk_date}
    error = _refused(client)
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    assert "X-Sdk-Date" in error.error_msg and "15 minutes" in error.error_msg


def test_x_sdk_date_within_the_window_is_accepted(server: CsscertServer, account: Account) -> None:
    client = _client(server, BasicCredentials(account.access, account.secret, account.project_id))
    client.preset_headers = {
        "X-Sdk-Date": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).strftime("%Y%m%dT%H%M%SZ")
    }
    assert client.download_cert(DownloadCertRequest()).status_code == 200


def test_another_users_project_is_403_css_0015(server: CsscertServer, account: Account) -> None:
    other = server.cli_json("project", "create", f"other{secrets.token_hex(4)}")["id"]
    error = _refused(_client(server, BasicCredentials(account.access, account.secret, other)))
    assert (error.status_code, error.error_code) == (403, "CSS.0015")


def test_unknown_project_id_is_404_css_0016_once_authenticated(
    server: CsscertServer, account: Account
) -> None:
    error = _refused(_client(server, BasicCredentials(account.access, account.secret, secrets.token_hex(16))))
    assert (error.status_code, error.error_code) == (404, "CSS.0016")


def test_unknown_project_id_with_a_bad_signature_is_401_not_404(
    server: CsscertServer, account: Account
) -> None:
    error = _refused(_client(server, BasicCredentials(account.access, "x" * 40, secrets.token_hex(16))))
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")


def test_endpoint_without_project_id_sends_the_placeholder_and_gets_400(
    server: CsscertServer, account: Account
) -> None:
    client = _client(server, BasicCredentials(account.access, account.secret))
    error = _refused(client)
    assert (error.status_code, error.error_code) == (400, "CSS.0001")


def test_security_token_is_refused_clearly(server: CsscertServer, account: Account) -> None:
    credentials = BasicCredentials(account.access, account.secret, account.project_id).with_security_token(
        "st"
    )
    error = _refused(_client(server, credentials))
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    assert "X-Security-Token" in error.error_msg


def _region_of(server: CsscertServer) -> str:
    return str(server.bootstrap["region"])


def test_region_without_project_id_finds_it_through_v3_projects(server: CsscertServer) -> None:
    region = _region_of(server)
    account = new_account(server, project_id=server.project_id, prefix="sdk")  # the region's own project
    credentials = BasicCredentials(account.access, account.secret).with_iam_endpoint(server.url)
    client = (
        CssClient.new_builder().with_credentials(credentials).with_region(Region(region, server.url)).build()
    )
    # The builder asked GET /v3/projects?name=<region> (AK/SK-signed) and kept the one answer.
    assert credentials.project_id == server.project_id
    response = client.download_cert(DownloadCertRequest())
    assert response.raw_content == _served(server, account)


def test_region_lookup_honours_the_iam_endpoint_environment_variable(
    server: CsscertServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    region = _region_of(server)
    account = new_account(server, project_id=server.project_id, prefix="sdk")
    monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", server.url)
    credentials = BasicCredentials(account.access, account.secret)
    client = (
        CssClient.new_builder().with_credentials(credentials).with_region(Region(region, server.url)).build()
    )
    assert credentials.project_id == server.project_id
    assert client.download_cert(DownloadCertRequest()).status_code == 200


def test_region_lookup_with_a_region_the_user_has_no_project_in_fails_in_the_sdk(
    server: CsscertServer, account: Account
) -> None:
    credentials = BasicCredentials(account.access, account.secret).with_iam_endpoint(server.url)
    builder = (
        CssClient.new_builder().with_credentials(credentials).with_region(Region("nowhere-9", server.url))
    )
    with pytest.raises(SdkException, match="Failed to get project id of region 'nowhere-9'"):
        builder.build()


def test_region_lookup_with_a_wrong_secret_key_fails_with_401(
    server: CsscertServer, account: Account
) -> None:
    credentials = BasicCredentials(account.access, "y" * 40).with_iam_endpoint(server.url)
    builder = (
        CssClient.new_builder()
        .with_credentials(credentials)
        .with_region(Region(_region_of(server), server.url))
    )
    with pytest.raises(SdkException) as info:
        builder.build()
    # The SDK wraps the Keystone-shaped 401 it got from GET /v3/projects.
    assert "status_code:401" in str(info.value)
    assert "Incorrect IAM authentication information" in str(info.value)
