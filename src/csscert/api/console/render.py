"""Turning templates into responses, with the headers every console response carries.

Jinja2 with autoescaping on for every template and ``StrictUndefined`` (a misspelt variable is an
error, not an empty string). Templates and the two static files are package data. Every answer
gets a strict Content-Security-Policy (nothing inline; script and style only from the console's
own files), no framing, no referrer, and pages are never stored by a cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import jinja2

from csscert.api.wire import Headers, Response
from csscert.errors import CsscertError, MethodNotAllowed, ServiceUnavailable, Throttled

__all__ = ["SECURITY_HEADERS", "STATIC", "error_page", "page", "redirect", "static_file"]

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)
_NO_STORE = ("cache-control", "no-store")
_HTML = "text/html; charset=utf-8"

_PACKAGE = files("csscert.api.console")
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("csscert.api.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _static(name: str, content_type: str) -> tuple[bytes, str, str]:
    body = (_PACKAGE / "static" / name).read_bytes()
    return body, content_type, hashlib.sha256(body).hexdigest()[:16]


#: name -> (bytes, content type, version): the version goes into the URL, so the files may be
#: cached for a year and a new release is fetched at once.
STATIC: dict[str, tuple[bytes, str, str]] = {
    "console.css": _static("console.css", "text/css; charset=utf-8"),
    "console.js": _static("console.js", "text/javascript; charset=utf-8"),
}
_ENV.globals["static"] = lambda name: f"/console/static/{name}?v={STATIC[name][2]}"


def _headers(request_id: str, extra: Sequence[tuple[str, str]] = ()) -> Headers:
    return [("content-type", _HTML), _NO_STORE, *SECURITY_HEADERS, ("x-request-id", request_id), *extra]


def page(
    template: str,
    context: dict[str, Any],
    request_id: str,
    *,
    status: int = 200,
    extra: Sequence[tuple[str, str]] = (),
) -> Response:
    body = _ENV.get_template(template).render(**context).encode()
    return status, _headers(request_id, extra), body


def redirect(location: str, request_id: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
    """303 See Other (after a POST, the browser follows with a GET). ``location`` is ours."""
    return (
        303,
        [("location", location), _NO_STORE, *SECURITY_HEADERS, ("x-request-id", request_id), *extra],
        b"",
    )


def static_file(name: str, request_id: str) -> Response | None:
    found = STATIC.get(name)
    if found is None:
        return None
    body, content_type, _ = found
    headers: Headers = [
        ("content-type", content_type),
        ("cache-control", "public, max-age=31536000, immutable"),
        *SECURITY_HEADERS,
        ("x-request-id", request_id),
    ]
    return 200, headers, body


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    429: "Too many requests",
    500: "Server error",
    503: "Service unavailable",
}


def error_page(status: int, message: str, request_id: str, error: CsscertError | None = None) -> Response:
    """An error as a page (the console's error shape): what went wrong and the request id."""
    extra: list[tuple[str, str]] = []
    if isinstance(error, MethodNotAllowed):
        extra.append(("allow", error.allow))
    if isinstance(error, ServiceUnavailable | Throttled):
        extra.append(("retry-after", str(error.retry_after)))
    title = _TITLES.get(status, "Error")
    context = {"title": title, "message": message, "request_id": request_id, "session": None}
    return page("error.html", context, request_id, status=status, extra=extra)
