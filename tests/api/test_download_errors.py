"""Every status the download route answers, with its exact body shape, sent as real clients send it.

Paths are written to the socket verbatim (http.client does not re-encode them), so the literal
``{project_id}`` of a misconfigured SDK reaches the server exactly as it does in the field.
"""

from __future__ import annotations

import re

import httpx
import pytest
from support.http import Raw, assert_css_error, send
from support.server import CsscertServer

UNKNOWN_PROJECT = "0123456789abcdef0123456789abcdef"
_IGNORED = {"date", "x-request-id"}


def download_path(project_id: str) -> str:
    return f"/v1.0/{project_id}/cer/download"


# -- 400 CSS.0001: the project id is not 32 lower-case hex characters -------------------------

BAD_PROJECT_IDS = [
    "{project_id}",  # what the SDK sends when no project id is configured
    "%7Bproject_id%7D",  # ... and the same, percent-encoded (the SDK's actual bytes)
    "%7bproject_id%7d",
    "0123456789ABCDEF0123456789ABCDEF",
    "0" * 31,
    "0" * 33,
    "g" * 32,
    UNKNOWN_PROJECT + "%0A",  # a trailing newline must not slip through a "$" regex
    "%0A" + UNKNOWN_PROJECT,
    UNKNOWN_PROJECT[:-1] + "%00",
    "%20" + UNKNOWN_PROJECT[1:],
    "",
    "..",
    "%2e%2e",
]


@pytest.mark.parametrize("project_id", BAD_PROJECT_IDS)
@pytest.mark.parametrize("authenticated", [True, False])
def test_bad_project_id_is_400_css_0001(
    server: CsscertServer, admin_token: str, project_id: str, authenticated: bool
) -> None:
    headers = {"X-Auth-Token": admin_token} if authenticated else {}
    for method in ("GET", "HEAD"):
        response = send(server, method, download_path(project_id), headers)
        if method == "HEAD":
            assert response.status == 400 and response.body == b""
            assert int(response.headers["content-length"]) > 0
            continue
        body = assert_css_error(response, 400, "CSS.0001")
        assert "project_id" in body["error_msg"]
        assert response.headers["content-length"] == str(len(response.body))


def test_sdk_literal_project_id_through_httpx(server: CsscertServer, admin_token: str) -> None:
    # httpx, like the SDK, percent-encodes the braces.
    url = f"{server.url}/v1.0/{{project_id}}/cer/download"
    response = httpx.get(url, headers={"X-Auth-Token": admin_token})
    assert_css_error(response, 400, "CSS.0001")


# -- 404 CSS.0016: a well-formed project id nobody created --------------------------------------


def test_unknown_project_is_404_css_0016(server: CsscertServer, admin_token: str) -> None:
    response = send(server, "GET", download_path(UNKNOWN_PROJECT), {"X-Auth-Token": admin_token})
    body = assert_css_error(response, 404, "CSS.0016")
    assert UNKNOWN_PROJECT in body["error_msg"]
    head = send(server, "HEAD", download_path(UNKNOWN_PROJECT), {"X-Auth-Token": admin_token})
    assert head.status == 404 and head.body == b""
    assert head.headers["content-length"] == response.headers["content-length"]


def test_anonymous_callers_learn_nothing_about_projects(server: CsscertServer) -> None:
    for project_id in (server.project_id, UNKNOWN_PROJECT):
        assert_css_error(send(server, "GET", download_path(project_id)), 401, "APIGW.0301")


# -- 405 with Allow ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_other_methods_are_405_with_allow(server: CsscertServer, admin_token: str, method: str) -> None:
    for project_id in (server.project_id, UNKNOWN_PROJECT, "{project_id}"):
        response = send(server, method, download_path(project_id), {"X-Auth-Token": admin_token})
        assert_css_error(response, 405, "CSS.0001")
        assert response.headers["allow"] == "GET, HEAD"


def test_a_post_with_a_large_body_is_still_405_with_allow(server: CsscertServer, admin_token: str) -> None:
    response = httpx.post(
        server.download_url(), headers={"X-Auth-Token": admin_token}, json={"file": "x" * 100_000}
    )
    assert_css_error(response, 405, "CSS.0001")
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/healthz", "/", "/openapi.json"])
def test_other_routes_405_too(server: CsscertServer, path: str) -> None:
    response = send(server, "POST", path)
    assert_css_error(response, 405, "CSS.0001")
    assert response.headers["allow"] == "GET, HEAD"
    assert send(server, "GET", path).status == 200


# -- 404 for everything else ------------------------------------------------------------------


def _unknown_paths(project_id: str) -> list[str]:
    return [
        "/nope",
        "/v1.0",
        "/v1.0/",
        "/v1.0/cer/download",
        f"/v1.0/{project_id}",
        f"/v1.0/{project_id}/cer",
        f"/v1.0/{project_id}/cer/download/",
        f"/v1.0/{project_id}/cer/download/extra",
        f"/v1.0/{project_id}/cer/DOWNLOAD",
        f"/v2.0/{project_id}/cer/download",
        f"/V1.0/{project_id}/cer/download",
        f"/v1.0/{project_id}/{project_id}/cer/download",
        f"/v1.0/{project_id}%2Fx/cer/download",
        f"/x/../v1.0/{project_id}/cer/download",
        f"//v1.0/{project_id}/cer/download",
        "/healthz/",
        "/%00",
    ]


def test_unknown_paths_are_404(server: CsscertServer, admin_token: str) -> None:
    for path in _unknown_paths(server.project_id):
        for headers in ({}, {"X-Auth-Token": admin_token}):
            response = send(server, "GET", path, headers)
            assert response.status == 404, (path, response.status, response.body)
            assert_css_error(response, 404, "APIGW.0101")
        head = send(server, "HEAD", path)
        assert head.status == 404 and head.body == b"" and head.headers["x-request-id"]


# -- X-Request-Id on every response -----------------------------------------------------------


def test_every_response_has_a_fresh_request_id(server: CsscertServer, admin_token: str) -> None:
    token = {"X-Auth-Token": admin_token}
    ok = send(server, "GET", download_path(server.project_id), token)
    assert ok.status == 200
    etag = ok.headers["etag"]
    exchanges = [
        ("GET", download_path(server.project_id), token, 200),
        ("HEAD", download_path(server.project_id), token, 200),
        ("GET", download_path(server.project_id), {**token, "If-None-Match": etag}, 304),
        ("GET", download_path(server.project_id), {**token, "Accept": "image/png"}, 406),
        ("GET", download_path(server.project_id), {}, 401),
        ("GET", download_path(server.project_id), {"X-Auth-Token": "garbage"}, 401),
        ("GET", download_path("{project_id}"), token, 400),
        ("GET", download_path(UNKNOWN_PROJECT), token, 404),
        ("DELETE", download_path(server.project_id), token, 405),
        ("GET", "/nope", {}, 404),
        ("GET", "/healthz", {}, 200),
        ("GET", "/v3", {}, 200),
        ("GET", "/v3/projects", {}, 401),
    ]
    seen: set[str] = set()
    for method, path, headers, status in exchanges:
        response = send(server, method, path, headers)
        assert response.status == status, (method, path, response.status, response.body)
        request_id = response.headers.get("x-request-id", "")
        if path.startswith("/v3"):  # Keystone's format, the same id in x-openstack-request-id
            assert re.fullmatch(r"req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", request_id)
            assert response.headers["x-openstack-request-id"] == request_id
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", request_id), (method, path, response.header_list)
        assert request_id not in seen
        seen.add(request_id)


# -- HEAD -------------------------------------------------------------------------------------


def test_head_has_the_same_headers_and_no_body(server: CsscertServer, admin_token: str) -> None:
    token = {"X-Auth-Token": admin_token}
    get = send(server, "GET", download_path(server.project_id), token)
    head = send(server, "HEAD", download_path(server.project_id), token)
    assert get.status == head.status == 200
    assert head.body == b"" and len(get.body) > 0
    assert int(head.headers["content-length"]) == len(get.body)

    def comparable(response: Raw) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.header_list if k not in _IGNORED)

    assert comparable(head) == comparable(get)
    # HEAD through a real client library too.
    response = httpx.head(server.download_url(), headers=token)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-disposition"] == 'attachment; filename="CloudSearchService.cer"'
    assert response.headers["etag"] == get.headers["etag"]


# -- Accept and Content-Type as the clients send them -----------------------------------------

COMMON_ACCEPTS = [
    None,
    "*/*",
    "application/octet-stream",
    "application/*",
    "*/*; q=0.5",
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",  # a browser
    "application/x-pem-file",
    "application/x-x509-ca-cert",
    "text/plain",
    "application/octet-stream, application/json;q=0.5",
]


@pytest.mark.parametrize("accept", COMMON_ACCEPTS)
@pytest.mark.parametrize("content_type", [None, "application/json", "application/json;charset=UTF-8"])
def test_common_accept_and_content_type_get_the_pem(
    server: CsscertServer, admin_token: str, accept: str | None, content_type: str | None
) -> None:
    headers = {"X-Auth-Token": admin_token}
    if accept is not None:
        headers["Accept"] = accept
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = send(server, "GET", download_path(server.project_id), headers)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.body.startswith(b"-----BEGIN CERTIFICATE-----")
    plain = send(server, "GET", download_path(server.project_id), {"X-Auth-Token": admin_token})
    assert response.body == plain.body


def test_the_sdk_request_as_captured(server: CsscertServer, admin_token: str) -> None:
    """The header set of the Huawei SDK (wire contract), with a token instead of the signature."""
    headers = {
        "User-Agent": "huaweicloud-usdk-python/3.0; os/Linux; app/7e0c",
        "Accept-Encoding": "gzip, deflate",
        "Accept": "*/*",
        "Content-Type": "application/json",
        "X-Project-Id": server.project_id,
        "X-Auth-Token": admin_token,
        "Host": f"127.0.0.1:{server.port}",
    }
    response = send(server, "GET", download_path(server.project_id), headers)
    assert response.status == 200
    assert "content-encoding" not in response.headers
    headers["X-Project-Id"] = UNKNOWN_PROJECT
    mismatched = send(server, "GET", download_path(server.project_id), headers)
    assert_css_error(mismatched, 400, "CSS.0001")
