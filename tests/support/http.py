"""HTTP helpers: the download request, raw exchanges with the path sent byte for byte, error shapes."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from support.server import CsscertServer

#: The keys of a CSS error body, exactly and in this order.
CSS_ERROR_KEYS = ["error_code", "error_msg", "errCode", "externalMessage", "request_id"]
CSS_ERROR_CONTENT_TYPE = "application/json;charset=UTF-8"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def download(
    server: CsscertServer,
    token: str,
    *,
    project: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    """``GET /v1.0/{project}/cer/download?query&params`` with an X-Auth-Token (plus ``headers``)."""
    every = {**(query or {}), **params}
    return httpx.request(
        method,
        server.download_url(project),
        params=every or None,
        headers={"X-Auth-Token": token, **(headers or {})},
        timeout=30,
    )


class Raw:
    """One HTTP/1.1 exchange with the path sent byte for byte."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    server: CsscertServer, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> Raw:
    """One request whose path goes on the wire verbatim (http.client does not re-encode it)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return Raw(response.status, [(k.lower(), v) for k, v in response.getheaders()], response.read())
    finally:
        conn.close()


def assert_css_error(response: Raw | httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is a CSS error of ``status`` and ``code`` in the exact wire shape; its body."""
    got = response.status_code if isinstance(response, httpx.Response) else response.status
    assert got == status, (got, response.headers, getattr(response, "body", b""))
    assert response.headers["content-type"] == CSS_ERROR_CONTENT_TYPE
    body = response.json()
    assert list(body) == CSS_ERROR_KEYS  # exactly these keys, in this order
    assert body["error_code"] == body["errCode"] == code
    assert isinstance(body["error_msg"], str) and body["error_msg"]
    assert body["externalMessage"] == f"{code} : {body['error_msg']}"
    assert REQUEST_ID.fullmatch(body["request_id"])
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """(status, error_code, error_msg) of a CSS error response."""
    body = response.json()
    return response.status_code, body["error_code"], body["error_msg"]
