"""The wire format: status codes, error bodies and header helpers. No domain logic here.

CSS errors carry both key pairs clients read (``error_code``/``error_msg`` for the Huawei SDK
and the API Gateway style, ``errCode``/``externalMessage`` for the CSS service style), so
every client shows the real code. Keystone routes use Keystone's own error shape.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from csscert.errors import CsscertError, MethodNotAllowed, ServiceUnavailable, UnsupportedAuthMethod

__all__ = [
    "CSS_ERRORS",
    "CSS_SHAPE",
    "KEYSTONE_SHAPE",
    "ErrorShape",
    "Headers",
    "Response",
    "css_error",
    "css_error_of",
    "json_response",
    "keystone_error",
    "keystone_error_of",
    "keystone_request_id",
    "new_request_id",
]

Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]

JSON = "application/json"
JSON_UTF8 = "application/json;charset=UTF-8"

# (status, code, the code's meaning from the CSS error table)
CSS_ERRORS: dict[str, tuple[int, str]] = {
    "CSS.0001": (400, "Incorrect parameters."),
    "CSS.0015": (403, "No resources are found or the access is denied."),
    "CSS.0016": (404, "Resource not found."),
    "CSS.9999": (500, "Failed to process the request."),
    "APIGW.0301": (401, "Incorrect IAM authentication information."),
    "APIGW.0101": (404, "The API does not exist or has not been published in the environment."),
}


def new_request_id() -> str:
    """16 random bytes as 32 hex digits: the request id of the CSS routes (the gateway's format)."""
    return os.urandom(16).hex()


def keystone_request_id(request_id: str) -> str:
    """The same random id in Keystone's format, ``req-<uuid4>``: Keystone routes send it in both
    ``X-Request-Id`` and ``x-openstack-request-id`` (clients quote the latter in their errors).
    The version bits of a uuid4 overwrite 6 of the 128 random bits; 122 stay random."""
    return f"req-{uuid.UUID(hex=request_id, version=4)}"


# A memo of a pure function (it may live as long as the process): bounded in entries and, since
# some messages quote what the caller sent, only short messages are kept.
_prefix_cache: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_PREFIX_CACHE_ENTRIES = 1024
_PREFIX_CACHE_MESSAGE_MAX = 256


def _error_parts(code: str, message: str) -> tuple[bytes, bytes]:
    """The body around the request id, built once per (code, message)."""
    parts = _prefix_cache.get((code, message))
    if parts is None:
        external = f"{code} : {message}"
        head = json.dumps(
            {"error_code": code, "error_msg": message, "errCode": code, "externalMessage": external},
            separators=(",", ":"),
        )[:-1]
        parts = ((head + ',"request_id":"').encode(), b'"}')
        if len(_prefix_cache) < _PREFIX_CACHE_ENTRIES and len(message) <= _PREFIX_CACHE_MESSAGE_MAX:
            _prefix_cache[(code, message)] = parts
    return parts


def css_error(
    code: str,
    message: str,
    request_id: str,
    extra: Sequence[tuple[str, str]] = (),
    *,
    status: int | None = None,
) -> Response:
    """A CSS/API Gateway error body; ``status`` overrides the code's usual status (405, 406)."""
    status = status or CSS_ERRORS[code][0]
    head, tail = _error_parts(code, message)
    body = head + request_id.encode() + tail
    headers: Headers = [("content-type", JSON_UTF8), ("x-request-id", request_id), *extra]
    return status, headers, body


_KEYSTONE_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def keystone_error(
    status: int,
    message: str,
    request_id: str,
    extra: Sequence[tuple[str, str]] = (),
    *,
    detail: dict[str, object] | None = None,
) -> Response:
    """Keystone's error body; ``detail`` adds keys Keystone puts beside code/title/message."""
    error = {
        "code": status,
        "title": _KEYSTONE_TITLES.get(status, "Error"),
        "message": message,
        **(detail or {}),
    }
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    headers: Headers = [("content-type", JSON), ("x-request-id", request_id), *extra]
    if status == 401:
        headers.append(("www-authenticate", 'Keystone uri="/v3"'))
    return status, headers, body


def json_response(
    status: int, payload: object, request_id: str, extra: Sequence[tuple[str, str]] = ()
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, [("content-type", JSON), ("x-request-id", request_id), *extra], body


def _extra_headers(error: CsscertError) -> list[tuple[str, str]]:
    extra: list[tuple[str, str]] = []
    if isinstance(error, MethodNotAllowed):
        extra.append(("allow", error.allow))
    if isinstance(error, ServiceUnavailable):
        extra.append(("retry-after", str(error.retry_after)))
    return extra


def css_error_of(error: CsscertError, request_id: str) -> Response:
    """Any csscert error in the CSS shape, with the code and status its class carries."""
    return css_error(error.css_code, str(error), request_id, _extra_headers(error), status=error.status)


def keystone_error_of(error: CsscertError, request_id: str) -> Response:
    """Any csscert error in Keystone's shape, with the Keystone status its class carries."""
    detail: dict[str, object] | None = None
    if isinstance(error, UnsupportedAuthMethod):
        detail = {"identity": {"methods": list(error.supported)}}
    return keystone_error(error.keystone_status, str(error), request_id, _extra_headers(error), detail=detail)


def _css_internal(request_id: str) -> Response:
    return css_error("CSS.9999", "Failed to process the request.", request_id)


def _keystone_internal(request_id: str) -> Response:
    return keystone_error(
        500, "An unexpected error prevented the server from fulfilling your request.", request_id
    )


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """How one family of routes answers errors: a csscert error, and an internal failure (whose
    detail goes to the log, never to the caller)."""

    name: str
    of: Callable[[CsscertError, str], Response]
    internal: Callable[[str], Response]


CSS_SHAPE = ErrorShape("css", css_error_of, _css_internal)
KEYSTONE_SHAPE = ErrorShape("keystone", keystone_error_of, _keystone_internal)
