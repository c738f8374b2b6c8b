"""Authentication on the download API as plain HTTP clients see it: curl, tokens, AK/SK signatures.

Tokens come from the real CLI or from ``POST /v3/auth/tokens``; signatures from the official
SDK signer (see support.signing). Nothing is mocked.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.accounts import Account, new_account
from support.http import error_of
from support.server import CsscertServer
from support.signing import sdk_sign

_B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
_CSS_JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def account_token(server: CsscertServer, account: Account) -> str:
    """A token of ``account``'s user, scoped to its project."""
    return server.token(user=account.user, project=account.project_id)


def _signed_download(
    server: CsscertServer, account: Account, project_id: str | None = None, **extra: str
) -> tuple[str, dict[str, str]]:
    project_id = project_id or account.project_id
    headers = {**_CSS_JSON, "X-Project-Id": project_id, **extra}
    return sdk_sign(account.access, account.secret, "GET", server.download_url(project_id), headers)


def test_curl_with_x_auth_token_downloads_the_certificate(
    server: CsscertServer, account: Account, account_token: str, tmp_path: Path
) -> None:
    target = tmp_path / "CloudSearchService.cer"
    subprocess.run(
        [
            "curl",
            "-fsS",
            "-H",
            f"X-Auth-Token: {account_token}",
            "-o",
            str(target),
            server.download_url(account.project_id),
        ],
        check=True,
        timeout=30,
    )
    reference = httpx.get(server.download_url(account.project_id), headers={"X-Auth-Token": account_token})
    assert reference.status_code == 200
    assert target.read_bytes() == reference.content
    # curl -f fails on any 4xx: a wrong token must make it fail.
    failed = subprocess.run(
        [
            "curl",
            "-fsS",
            "-H",
            "X-Auth-Token: nope",
            "-o",
            str(tmp_path / "x"),
            server.download_url(account.project_id),
        ],
        capture_output=True,
        timeout=30,
    )
    assert failed.returncode == 22


def test_aksk_signed_by_the_sdk_signer_downloads(
    server: CsscertServer, account: Account, account_token: str, http_client: httpx.Client
) -> None:
    url, headers = _signed_download(server, account)
    response = http_client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.content == http_client.get(url, headers={"X-Auth-Token": account_token}).content


def test_every_one_character_change_to_a_token_is_refused(
    server: CsscertServer, account: Account, account_token: str, http_client: httpx.Client
) -> None:
    url = server.download_url(account.project_id)
    assert http_client.get(url, headers={"X-Auth-Token": account_token}).status_code == 200
    variants: set[str] = set()
    for i, char in enumerate(account_token):
        pool = _B64URL + "=" if char != "=" else _B64URL
        for replacement in (pool[(pool.index(char) + 1) % len(pool)] if char in pool else "A", "!", "="):
            if replacement != char:
                variants.add(account_token[:i] + replacement + account_token[i + 1 :])
    # The base64 decoder ignores the unused low bits of the last character before the
    # padding: flipping them decodes to the very same bytes, and must be refused all the same.
    stripped = account_token.rstrip("=")
    if len(stripped) != len(account_token):
        last = stripped[-1]
        twin = stripped[:-1] + _B64URL[_B64URL.index(last) ^ 1] + account_token[len(stripped) :]
        assert base64.urlsafe_b64decode(twin) == base64.urlsafe_b64decode(account_token)
        variants.add(twin)
    token = account_token
    variants.update({token[:-1], token + "A", token + "=", " " + token + "x", token.upper()})
    variants.discard(account_token)
    for variant in sorted(variants):
        response = http_client.get(url, headers={"X-Auth-Token": variant.strip() or "x"})
        assert response.status_code == 401, (variant, response.text)
        assert response.json()["error_code"] == "APIGW.0301"


def test_every_one_character_change_to_a_signature_is_refused(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    url, headers = _signed_download(server, account)
    assert http_client.get(url, headers=headers).status_code == 200
    authorization = headers["Authorization"]
    prefix, _, signature = authorization.rpartition("Signature=")
    assert len(signature) == 64
    tampered: list[str] = []
    for i, char in enumerate(signature):
        tampered.append(signature[:i] + "0123456789abcdef"[(int(char, 16) + 1) % 16] + signature[i + 1 :])
        if char.isalpha():
            tampered.append(
                signature[:i] + char.upper() + signature[i + 1 :]
            )  # same value, not the SDK's form
    tampered += [signature[:-1], signature + "0", signature.upper()]
    for value in tampered:
        response = http_client.get(url, headers={**headers, "Authorization": prefix + "Signature=" + value})
        assert response.status_code == 401, (value, response.text)
        assert response.json()["error_code"] == "APIGW.0301"
    # The access key is part of what is checked too.
    access = account.access
    other_access = access[:-1] + ("A" if access[-1] != "A" else "B")
    response = http_client.get(
        url, headers={**headers, "Authorization": authorization.replace(access, other_access)}
    )
    assert response.status_code == 401


def test_x_project_id_must_match_the_path(
    server: CsscertServer, account: Account, account_token: str, http_client: httpx.Client
) -> None:
    other = secrets.token_hex(16)
    # AK/SK: the SDK signs X-Project-Id, here naming another project than the path.
    url, headers = sdk_sign(
        account.access,
        account.secret,
        "GET",
        server.download_url(account.project_id),
        {**_CSS_JSON, "X-Project-Id": other},
    )
    status, code, message = error_of(http_client.get(url, headers=headers))
    assert (status, code) == (400, "CSS.0001")
    assert "X-Project-Id" in message
    # Token: the same rule.
    response = http_client.get(
        server.download_url(account.project_id),
        headers={"X-Auth-Token": account_token, "X-Project-Id": other},
    )
    assert error_of(response)[:2] == (400, "CSS.0001")


def test_x_security_token_is_refused_clearly(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    url, headers = _signed_download(server, account, **{"X-Security-Token": "temporary"})
    status, code, message = error_of(http_client.get(url, headers=headers))
    assert (status, code) == (401, "APIGW.0301")
    assert "X-Security-Token" in message and "not supported" in message


def test_unauthenticated_callers_cannot_tell_which_projects_exist(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    existing, missing = account.project_id, secrets.token_hex(16)
    ways: dict[str, Callable[[str], dict[str, str]]] = {
        "nothing": lambda pid: {},
        "bad token": lambda pid: {"X-Auth-Token": "gAAAAABnot-a-token"},
        "bad signature": lambda pid: sdk_sign(
            account.access, "z" * 40, "GET", server.download_url(pid), {**_CSS_JSON, "X-Project-Id": pid}
        )[1],
        "unknown key": lambda pid: sdk_sign(
            "UNKNOWNUNKNOWNUNKNOW", account.secret, "GET", server.download_url(pid), {**_CSS_JSON}
        )[1],
    }
    for way, make in ways.items():
        answers = []
        for pid in (existing, missing):
            response = http_client.get(server.download_url(pid), headers=make(pid))
            answers.append(error_of(response))
        assert answers[0] == answers[1], way
        assert answers[0][:2] == (401, "APIGW.0301"), way


def test_unknown_key_wrong_secret_disabled_key_and_disabled_user_look_the_same(
    server: CsscertServer, http_client: httpx.Client
) -> None:
    live = new_account(server, prefix="same")
    disabled_key = server.cli_json("credential", "create", "--user", live.user)
    server.cli("credential", "disable", disabled_key["access"])
    other = new_account(server, project_id=live.project_id, prefix="gone")
    server.cli("user", "disable", other.user)

    def attempt(access: str, secret: str) -> tuple[int, str, str]:
        url, headers = sdk_sign(
            access,
            secret,
            "GET",
            server.download_url(live.project_id),
            {**_CSS_JSON, "X-Project-Id": live.project_id},
        )
        return error_of(http_client.get(url, headers=headers))

    url, headers = sdk_sign(live.access, live.secret, "GET", server.download_url(live.project_id), _CSS_JSON)
    assert http_client.get(url, headers=headers).status_code == 200
    answers = {
        "unknown access key": attempt("AAAAAAAAAAAAAAAAAAAA", live.secret),
        "wrong secret key": attempt(live.access, live.secret[::-1]),
        "disabled access key": attempt(disabled_key["access"], disabled_key["secret"]),
        "disabled user": attempt(other.access, other.secret),
    }
    assert len(set(answers.values())) == 1, answers
    status, code, message = answers["wrong secret key"]
    assert (status, code) == (401, "APIGW.0301")
    assert message.startswith("Incorrect IAM authentication information")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Basic dXNlcjpwYXNz", "Authorization must be"),
        ("SDK-HMAC-SM3 Access=AK, SignedHeaders=host;x-sdk-date, Signature=" + "0" * 64, "not supported"),
        ("V11-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=" + "0" * 64, "not supported"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=Host;x-sdk-date, Signature=" + "0" * 64, "SignedHeaders"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date;host, Signature=" + "0" * 64, "SignedHeaders"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature=" + "0" * 64, "host and x-sdk-date"),
        (
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=" + "0" * 63,
            "Authorization must be",
        ),
    ],
)
def test_malformed_signatures_are_401_with_a_reason(
    server: CsscertServer, account: Account, http_client: httpx.Client, authorization: str, expected: str
) -> None:
    sdk_date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = http_client.get(
        server.download_url(account.project_id),
        headers={"Authorization": authorization, "X-Sdk-Date": sdk_date},
    )
    status, code, message = error_of(response)
    assert (status, code) == (401, "APIGW.0301")
    assert expected in message


@pytest.mark.parametrize("sdk_date", [None, "2024-01-01T00:00:00Z", "20241301T000000Z"])
def test_missing_or_malformed_x_sdk_date_is_401(
    server: CsscertServer, account: Account, http_client: httpx.Client, sdk_date: str | None
) -> None:
    url, headers = _signed_download(server, account)
    if sdk_date is None:
        del headers["X-Sdk-Date"]
    else:
        headers["X-Sdk-Date"] = sdk_date
    status, code, message = error_of(http_client.get(url, headers=headers))
    assert (status, code) == (401, "APIGW.0301")
    assert "X-Sdk-Date" in message


def test_a_signed_header_missing_from_the_request_is_401(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    url, headers = _signed_download(server, account, **{"X-Extra": "signed"})
    del headers["X-Extra"]
    status, code, message = error_of(http_client.get(url, headers=headers))
    assert (status, code, "x-extra" in message) == (401, "APIGW.0301", True)


def test_declared_unsigned_payload_only_counts_when_signed(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    # The SDK marks non-JSON bodies UNSIGNED-PAYLOAD and signs that header; the body may then vary.
    url, headers = sdk_sign(
        account.access,
        account.secret,
        "GET",
        server.download_url(account.project_id),
        {"Content-Type": "text/plain", "X-Project-Id": account.project_id},
        body=b"hello",
    )
    assert "x-sdk-content-sha256" in headers["Authorization"]
    assert http_client.request("GET", url, headers=headers, content=b"hello").status_code == 200
    # A JSON body is hashed into the signature; adding an unsigned UNSIGNED-PAYLOAD does not help.
    url, headers = sdk_sign(
        account.access,
        account.secret,
        "GET",
        server.download_url(account.project_id),
        {**_CSS_JSON, "X-Project-Id": account.project_id},
        body=b'{"a": 1}',
    )
    assert http_client.request("GET", url, headers=headers, content=b'{"a": 1}').status_code == 200
    forged = {**headers, "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    assert http_client.request("GET", url, headers=forged, content=b'{"a": 2}').status_code == 401
    assert http_client.request("GET", url, headers=headers, content=b'{"a": 2}').status_code == 401


def test_a_chunked_body_is_covered_by_the_signature(
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    body = b'{"chunked": true}'
    url, headers = sdk_sign(
        account.access,
        account.secret,
        "GET",
        server.download_url(account.project_id),
        {**_CSS_JSON, "X-Project-Id": account.project_id},
        body=body,
    )

    def chunks(data: bytes) -> Iterator[bytes]:
        yield data[:5]
        yield data[5:]

    assert http_client.request("GET", url, headers=headers, content=chunks(body)).status_code == 200
    assert (
        http_client.request(
            "GET", url, headers=headers, content=chunks(body.replace(b"true", b"fals"))
        ).status_code
        == 401
    )
