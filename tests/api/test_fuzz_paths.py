"""Bad input never yields a 500: generated project ids, paths, percent-encoded junk, non-UTF-8 bytes
on a raw socket, weird headers. Every answer from the application carries its request id and,
for an error, the CSS (or, under /v3, the Keystone) error shape.

Requests that are not valid HTTP at all (raw control or non-ASCII bytes in the request line or a
header name, a request line over granian's limit) are refused by the HTTP server itself with a
bare 400/414/431 before the application runs; for those the test asks only for "not a 5xx".
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.http import CSS_ERROR_CONTENT_TYPE, CSS_ERROR_KEYS, send
from support.server import CsscertServer

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEX32 = re.compile(r"[0-9a-f]{32}")
KEYSTONE_REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
JUNK_ESCAPES = [
    "%",
    "%G",
    "%0",
    "%00",
    "%0A",
    "%0D",
    "%ff",
    "%FE",
    "%c3%28",
    "%e2%82",
    "%ed%a0%80",
    "%f4%90%80%80",
    "%25",
    "%2F",
    "%2f",
    "%5C",
    "%7B",
    "%7D",
    "%%",
    "%u0041",
    "%2e",
    "%2E%2E",
    "%20",
    "%C0%AF",
    "%E0%80%AF",
]


def check(method: str, status: int, headers: dict[str, str], body: bytes, *, from_app: bool = True) -> None:
    assert status < 500, (status, headers, body[:300])
    if not from_app:
        return
    request_id = headers.get("x-request-id", "")
    if "x-openstack-request-id" in headers:  # a Keystone route: req-<uuid> in both headers
        assert KEYSTONE_REQUEST_ID.fullmatch(request_id), (status, headers)
        assert headers["x-openstack-request-id"] == request_id
    else:
        assert HEX32.fullmatch(request_id), (status, headers)
    if method == "HEAD":
        assert body == b""
        return
    if status >= 400:
        content_type = headers.get("content-type", "")
        payload: Any = json.loads(body)
        if content_type == CSS_ERROR_CONTENT_TYPE:
            assert list(payload) == CSS_ERROR_KEYS
            assert payload["request_id"] == request_id
            assert payload["error_code"] == payload["errCode"]
        else:
            assert content_type == "application/json"
            assert set(payload) == {"error"} and payload["error"]["code"] == status  # Keystone shape


def request(
    server: CsscertServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    response = send(server, method, path, headers, timeout=15)
    return response.status, response.headers, response.body


def raw_exchange(server: CsscertServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; parse the answer with http.client."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    try:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method="GET")
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        sock.close()


# -- project ids -----------------------------------------------------------------------------


@FUZZ
@given(
    project_id=st.one_of(
        st.text(max_size=70),
        st.text(alphabet="0123456789abcdefABCDEF{}_-.%/", min_size=30, max_size=34),
    )
)
@example(project_id="{project_id}")
@example(project_id="0123456789abcdef0123456789abcdef\n")  # "$" in a regex would let this through
@example(project_id="0123456789abcdef0123456789abcde\u0660")  # a non-ASCII digit
def test_generated_project_ids_get_exactly_the_expected_answer(
    server: CsscertServer, admin_token: str, project_id: str
) -> None:
    path = f"/v1.0/{quote(project_id, safe='{}')}/cer/download"
    status, headers, body = request(server, "GET", path, {"X-Auth-Token": admin_token})
    check("GET", status, headers, body)
    # The exact answer is known: the server sees the decoded id.
    expected: tuple[int, str | None]
    if "/" in project_id:
        expected = (404, "APIGW.0101")
    elif not HEX32.fullmatch(project_id):
        expected = (400, "CSS.0001")
    elif project_id == server.project_id:
        expected = (200, None)
    else:
        expected = (404, "CSS.0016")
    assert (status, json.loads(body)["error_code"] if status != 200 else None) == expected, (path, body)


@FUZZ
@given(
    junk=st.lists(
        st.one_of(st.sampled_from(JUNK_ESCAPES), st.text(alphabet="0123456789abcdef", max_size=8)),
        min_size=1,
        max_size=8,
    )
)
def test_percent_encoded_junk_in_the_project_id(
    server: CsscertServer, admin_token: str, junk: list[str]
) -> None:
    path = f"/v1.0/{''.join(junk)}/cer/download"
    for headers in ({"X-Auth-Token": admin_token}, {}):
        status, response_headers, body = request(server, "GET", path, headers)
        check("GET", status, response_headers, body)
        assert status in (400, 401, 404), (path, status, body)


# -- whole paths -----------------------------------------------------------------------------

_PREFIXES = ["", "/v1.0", "/v1.0/{pid}", "/v1.0/{pid}/cer", "/v3", "/v3/auth", "/v3/projects", "/healthz"]
_SUFFIXES = ["", "/", "/cer/download", "/download", "/..", "/%2e%2e/cer/download"]


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    prefix=st.sampled_from(_PREFIXES),
    segments=st.lists(st.one_of(st.text(max_size=12), st.sampled_from(JUNK_ESCAPES)), max_size=5),
    suffix=st.sampled_from(_SUFFIXES),
    query=st.one_of(st.just(""), st.text(max_size=30).map(lambda q: "?" + quote(q, safe="=&%"))),
    authenticated=st.booleans(),
)
def test_generated_paths_never_get_a_5xx(
    server: CsscertServer,
    admin_token: str,
    method: str,
    prefix: str,
    segments: list[str],
    suffix: str,
    query: str,
    authenticated: bool,
) -> None:
    middle = "".join("/" + (s if s in JUNK_ESCAPES else quote(s, safe="")) for s in segments)
    path = prefix.format(pid=server.project_id) + middle + suffix + query
    if not path.startswith("/"):
        path = "/" + path
    headers = {"X-Auth-Token": admin_token} if authenticated else {}
    status, response_headers, body = request(server, method, path, headers)
    check(method, status, response_headers, body)


@pytest.mark.parametrize("length", [1_000, 8_000, 60_000, 300_000])
def test_overlong_paths_never_get_a_5xx(server: CsscertServer, admin_token: str, length: int) -> None:
    for path in (
        "/v1.0/" + "a" * length + "/cer/download",
        "/" + "x/" * (length // 2),
        "/v1.0/" + "%ff" * (length // 3) + "/cer/download",
        f"/v1.0/{server.project_id}/cer/download?format=" + "p" * length,
    ):
        status, headers, body = raw_exchange(
            server, f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {admin_token}\r\n\r\n".encode()
        )
        from_app = "x-request-id" in headers
        check("GET", status, headers, body, from_app=from_app)
        if not from_app:
            assert status in (400, 414, 431), status
        elif length <= 8_000:
            assert status in (400, 404), (path[:80], status)


# -- non-UTF-8 bytes on the wire -------------------------------------------------------------

_NOT_UTF8 = st.binary(min_size=1, max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)


@FUZZ
@given(
    junk=_NOT_UTF8, where=st.sampled_from(["path", "query", "header-value", "token", "accept", "header-name"])
)
def test_non_utf8_bytes_on_the_wire_never_get_a_5xx(
    server: CsscertServer, admin_token: str, junk: bytes, where: str
) -> None:
    path = f"/v1.0/{server.project_id}/cer/download".encode()
    headers = {b"Host": b"127.0.0.1", b"X-Auth-Token": admin_token.encode()}
    if where == "path":
        path = b"/v1.0/" + junk.replace(b" ", b"") + b"/cer/download"
    elif where == "query":
        path += b"?format=" + junk.replace(b" ", b"")
    elif where == "header-value":
        headers[b"If-None-Match"] = junk
    elif where == "token":
        headers[b"X-Auth-Token"] = junk
    elif where == "accept":
        headers[b"Accept"] = junk
    else:
        headers[junk.replace(b":", b"") or b"\xff"] = b"v"
    data = b"GET " + path + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers.items())
    status, response_headers, body = raw_exchange(server, data + b"Connection: close\r\n\r\n")
    from_app = "x-request-id" in response_headers
    check("GET", status, response_headers, body, from_app=from_app)
    if not from_app:
        assert status == 400


# -- weird headers on the download -------------------------------------------------------------

_VISIBLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_LATIN1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=60
)


@FUZZ
@given(
    name=st.sampled_from(
        [
            "Accept",
            "If-None-Match",
            "If-Modified-Since",
            "Authorization",
            "X-Sdk-Date",
            "X-Project-Id",
            "Content-Type",
            "X-Auth-Token",
            "Host",
            "X-Security-Token",
            "Accept-Encoding",
            "Range",
            "Expect",
            "X-Sdk-Content-Sha256",
            "Cookie",
        ]
    ),
    value=st.one_of(
        _VISIBLE,
        _LATIN1,
        st.sampled_from(
            [
                "",
                " ",
                "*/*;q=nan",
                "*/*;q=inf",
                "*/*;q=-1",
                "*/*;q=1e999",
                ";;;",
                ",,,",
                "W/",
                'W/"',
                "*",
                "Thu, 01 Jan 1970 00:00:00 GMT",
                "Mon, 99 Foo 99999 99:99:99 GMT",
                "-1",
                "0" * 40,
                "SDK-HMAC-SHA256",
                "SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=",
                "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00",
                "20260101T000000Z",
                "99999999T999999Z",
                "bytes=0-10",
                "100-continue",
            ]
        ),
    ),
    head=st.booleans(),
)
def test_weird_headers_on_the_download_never_get_a_5xx(
    server: CsscertServer, admin_token: str, name: str, value: str, head: bool
) -> None:
    headers = {"X-Auth-Token": admin_token, name: value}
    if name == "Authorization":
        headers.pop("X-Auth-Token")
    method = "HEAD" if head else "GET"
    path = f"/v1.0/{server.project_id}/cer/download"
    status, response_headers, body = request(server, method, path, headers)
    check(method, status, response_headers, body)
    assert status in (200, 304, 400, 401, 403, 404, 406), (name, value, status, body)
