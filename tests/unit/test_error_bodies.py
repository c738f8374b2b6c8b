"""The error bodies, in process: the CSS/API Gateway shape and the Keystone shape, byte for byte.

CSS errors carry both key pairs clients read (``error_code``/``error_msg`` and
``errCode``/``externalMessage``) plus the request id, in this order; Keystone errors are
``{"error": {"code", "title", "message"}}`` and a 401 says where to authenticate. Every status
the server answers with them is in ``tests/api/test_download_errors.py``.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.http import CSS_ERROR_CONTENT_TYPE, CSS_ERROR_KEYS

# csscert internals under test (re-point here when they move).
from csscert.api.wire import CSS_ERRORS, css_error, css_error_of, keystone_error, keystone_error_of
from csscert.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    CsscertError,
    InvalidRequest,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    ResourceNotFound,
    RouteNotFound,
    ServiceUnavailable,
)

REQUEST_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("code", "status"),
    [("CSS.0001", 400), ("APIGW.0301", 401), ("CSS.0015", 403), ("CSS.0016", 404), ("APIGW.0101", 404),
     ("CSS.9999", 500)],
)  # fmt: skip
def test_each_css_code_has_its_status_and_the_full_body(code: str, status: int) -> None:
    got_status, headers, body = css_error(code, "What went wrong.", REQUEST_ID)
    assert got_status == status == CSS_ERRORS[code][0]
    assert headers == [("content-type", CSS_ERROR_CONTENT_TYPE), ("x-request-id", REQUEST_ID)]
    assert body == (
        b'{"error_code":"' + code.encode() + b'","error_msg":"What went wrong.","errCode":"'
        + code.encode() + b'","externalMessage":"' + code.encode() + b' : What went wrong.","request_id":"'
        + REQUEST_ID.encode() + b'"}'
    )  # fmt: skip


def test_a_status_override_and_extra_headers_keep_the_body() -> None:
    status, headers, body = css_error(
        "CSS.0001", "Method not allowed.", REQUEST_ID, [("allow", "GET, HEAD")], status=405
    )
    assert status == 405
    assert headers[-1] == ("allow", "GET, HEAD") and headers[:2] == [
        ("content-type", CSS_ERROR_CONTENT_TYPE), ("x-request-id", REQUEST_ID)
    ]  # fmt: skip
    assert json.loads(body)["error_code"] == "CSS.0001"


@given(
    message=st.text(max_size=60), request_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
)
def test_any_message_is_escaped_into_valid_json_in_the_fixed_key_order(message: str, request_id: str) -> None:
    _, _, body = css_error("CSS.0016", message, request_id)
    parsed = json.loads(body)
    assert list(parsed) == CSS_ERROR_KEYS
    assert parsed == {
        "error_code": "CSS.0016",
        "error_msg": message,
        "errCode": "CSS.0016",
        "externalMessage": f"CSS.0016 : {message}",
        "request_id": request_id,
    }


@pytest.mark.parametrize(
    ("status", "title"),
    [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"), (404, "Not Found"),
     (405, "Method Not Allowed"), (413, "Request Entity Too Large"), (500, "Internal Server Error"),
     (418, "Error")],
)  # fmt: skip
def test_keystone_errors_have_keystones_shape(status: int, title: str) -> None:
    got_status, headers, body = keystone_error(status, 'The "thing" failed.', REQUEST_ID)
    assert got_status == status
    assert json.loads(body) == {"error": {"code": status, "title": title, "message": 'The "thing" failed.'}}
    assert headers[:2] == [("content-type", "application/json"), ("x-request-id", REQUEST_ID)]
    challenge = [value for name, value in headers if name == "www-authenticate"]
    assert challenge == (['Keystone uri="/v3"'] if status == 401 else [])


@pytest.mark.parametrize(
    ("error", "css", "keystone"),
    [
        (InvalidRequest("bad"), (400, "CSS.0001"), 400),
        (AuthenticationFailed("who?"), (401, "APIGW.0301"), 401),
        (AccessDenied("no"), (403, "CSS.0015"), 403),
        (ResourceNotFound("gone"), (404, "CSS.0016"), 404),
        (RouteNotFound("nowhere"), (404, "APIGW.0101"), 404),
        (Conflict("twice"), (400, "CSS.0001"), 409),
        (MethodNotAllowed("use GET", "GET, HEAD"), (405, "CSS.0001"), 405),
        (NotAcceptable("no format"), (406, "CSS.0001"), 406),
        (PayloadTooLarge("too big"), (400, "CSS.0001"), 413),
        (ServiceUnavailable("later"), (503, "CSS.9999"), 503),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_every_error_class_maps_to_both_wire_shapes_by_its_own_codes(
    error: CsscertError, css: tuple[int, str], keystone: int
) -> None:
    status, headers, body = css_error_of(error, REQUEST_ID)
    assert (status, json.loads(body)["error_code"]) == css
    assert json.loads(body)["error_msg"] == str(error)
    k_status, k_headers, k_body = keystone_error_of(error, REQUEST_ID)
    assert k_status == keystone == json.loads(k_body)["error"]["code"]
    for extra in (dict(headers), dict(k_headers)):
        if isinstance(error, MethodNotAllowed):
            assert extra["allow"] == "GET, HEAD"
        if isinstance(error, ServiceUnavailable):
            assert extra["retry-after"] == "1"


def test_every_csscert_exception_derives_from_the_one_root() -> None:
    import csscert.errors as errors

    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, CsscertError) for cls in classes)
