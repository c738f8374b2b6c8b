"""Property tests of SDK-HMAC-SHA256: the SDK's own signer is the oracle, the real server the judge.

* Any request signed by ``huaweicloudsdkcore.signer.signer.Signer`` verifies against the real
  server; changing one byte of its method, path, query, a signed header, the body or the date
  makes the server refuse it (401 APIGW.0301; a method the route does not know is a 405).
* csscert's own ``signing`` module (used by its CLI client and, with ``decoded_path``, by the
  server on the path granian hands over) computes exactly what the SDK computes.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from conftest import CsscertServer
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from identity_helpers import Account, new_account

from csscert import signing

_SERVER_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_PURE_SETTINGS = settings(max_examples=100, deadline=None)

_HEX = "0123456789abcdef"
_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
_RESERVED_HEADERS = {
    "x-sdk-date",
    "x-project-id",
    "x-auth-token",
    "x-security-token",
    "x-sdk-content-sha256",
    "x-subject-token",
}
_CONTENT_TYPES = [
    "application/json",
    "application/json;charset=UTF-8",
    "text/plain",
    "application/octet-stream",
]


# -- strategies ---------------------------------------------------------------------------

header_names = (
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)
    .map(lambda s: "x-" + s)
    .filter(lambda n: n not in _RESERVED_HEADERS and not n.endswith("-"))
)
# Granian passes only visible ASCII (and inner spaces) through in header values, as HTTP/1.1 intends.
header_values = st.text(alphabet=_VISIBLE + " ", min_size=1, max_size=24).filter(lambda v: v.strip() != "")
query_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=0, max_size=12
)
query_pairs = st.lists(
    st.tuples(query_text.filter(lambda k: k not in ("format", "password")), query_text), max_size=4
)


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(header_names, max_size=4, unique=True))
    headers = {}
    for name in names:
        shown = "".join(c.upper() if draw(st.booleans()) else c for c in name)  # any case on the wire
        headers[shown] = draw(header_values)
    if draw(st.booleans()):
        headers["X_Unsigned_" + draw(st.sampled_from("abc"))] = draw(header_values)  # "_" names: unsigned
    return headers


@dataclass(frozen=True)
class Wire:
    """One request exactly as it goes on the wire."""

    method: str
    path: str  # percent-encoded
    query: str  # percent-encoded
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Case:
    wire: Wire
    pairs: list[tuple[str, str]]
    content_type: str


def _sdk_signed(
    account: Account,
    server: CsscertServer,
    method: str,
    pairs: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
) -> Wire:
    """Sign with the SDK's signer, then take what its HTTP client would send."""
    request = SdkRequest(
        method=method,
        schema="http",
        host=urlsplit(server.url).netloc,
        resource_path=f"/v1.0/{account.project_id}/cer/download",
        query_params=list(pairs),
        header_params=dict(headers),
        body=body,
    )
    Signer(BasicCredentials(account.access, account.secret)).sign(request)
    parts = urlsplit(request.url)
    return Wire(method, parts.path, parts.query, dict(request.header_params), body)


@st.composite
def signed_cases(draw: st.DrawFn, account: Account, server: CsscertServer) -> Case:
    pairs = draw(query_pairs)
    content_type = draw(st.sampled_from(_CONTENT_TYPES))
    headers = {"Content-Type": content_type, **draw(extra_headers())}
    if draw(st.booleans()):
        headers["X-Project-Id"] = account.project_id  # as BasicCredentials adds it
    body = draw(st.binary(max_size=48))
    method = "GET" if body or draw(st.booleans()) else "HEAD"
    return Case(_sdk_signed(account, server, method, pairs, headers, body), pairs, content_type)


# -- server fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(server: CsscertServer) -> Account:
    return new_account(server, prefix="prop")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def _send(client: httpx.Client, server: CsscertServer, wire: Wire) -> httpx.Response:
    url = server.url + wire.path + (f"?{wire.query}" if wire.query else "")
    request = client.build_request(wire.method, url, headers=wire.headers, content=wire.body or None)
    # httpx must not rewrite what was signed (it may add unsigned headers such as Accept).
    assert request.url.raw_path == (wire.path + (f"?{wire.query}" if wire.query else "")).encode()
    return client.send(request)


def _assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, (what, response.status_code, response.text)
    if response.request.method != "HEAD":
        assert response.json()["error_code"] == "APIGW.0301"


def _encode_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(pairs))


def _change_char(text: str, index: int, alphabet: str) -> str:
    """``text`` with the character at ``index`` replaced by another one from ``alphabet``."""
    old = text[index]
    new = next(c for c in alphabet[alphabet.find(old) + 1 :] + alphabet if c != old)
    return text[:index] + new + text[index + 1 :]


# -- properties against the real server ---------------------------------------------------


def test_sdk_signed_requests_verify_and_every_mutation_is_refused(
    server: CsscertServer, account: Account, client: httpx.Client
) -> None:
    @_SERVER_SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(signed_cases(account, server))
        wire = case.wire
        accepted = _send(client, server, wire)
        assert accepted.status_code == 200, (wire, accepted.text)

        kind = data.draw(st.sampled_from(["method", "path", "query", "header", "body", "date"]))
        if kind == "method":
            if wire.body:
                mutated = replace(
                    wire, method=_change_char(wire.method, data.draw(st.integers(0, 2)), "GETHADPOSX")
                )
                response = _send(client, server, mutated)
                assert response.status_code in (401, 405), (mutated.method, response.text)
                return
            mutated = replace(wire, method="HEAD" if wire.method == "GET" else "GET")
        elif kind == "path":
            # One hex digit of the project id: still a well-formed download path, so authentication runs.
            start = len("/v1.0/")
            index = data.draw(st.integers(start, start + 31))
            mutated = replace(wire, path=_change_char(wire.path, index, _HEX))
        elif kind == "query":
            if not case.pairs:
                pairs = [("a", "")]  # a query where there was none
            else:
                pairs = list(case.pairs)
                which = data.draw(st.integers(0, len(pairs) - 1))
                key, value = pairs[which]
                if value and data.draw(st.booleans()):
                    value = _change_char(value, data.draw(st.integers(0, len(value) - 1)), _VISIBLE)
                elif key:
                    key = _change_char(key, data.draw(st.integers(0, len(key) - 1)), _VISIBLE)
                else:
                    key = "k"
                pairs[which] = (key, value)
            mutated = replace(wire, query=_encode_query(pairs))
            assume(
                sorted(unquote(p) for p in mutated.query.split("&"))
                != sorted(unquote(p) for p in wire.query.split("&"))
            )
        elif kind == "header":
            signed = wire.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
            name_lower = data.draw(st.sampled_from([n for n in signed if n != "x-sdk-date"]))
            name = next(n for n in wire.headers if n.lower() == name_lower)
            value = wire.headers[name]
            changed = _change_char(value, data.draw(st.integers(0, len(value) - 1)), _VISIBLE + " ")
            assume(changed.strip() != value.strip())
            mutated = replace(wire, headers={**wire.headers, name: changed})
        elif kind == "body":
            assume(wire.method == "GET")
            body = wire.body or b"{}"  # where there was none, one byte more is the change
            if wire.body:
                index = data.draw(st.integers(0, len(body) - 1))
                flipped = (body[index] + data.draw(st.integers(1, 255))) % 256
                body = body[:index] + bytes([flipped]) + body[index + 1 :]
            mutated = replace(wire, body=body)
            if not case.content_type.startswith("application/json") and wire.body:
                # The SDK declares non-JSON bodies UNSIGNED-PAYLOAD (and signs that): by design the
                # body may then change. Check that, then change the signed declaration itself.
                assert _send(client, server, mutated).status_code == 200
                headers = dict(wire.headers)
                headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAE"
                mutated = replace(wire, headers=headers)
        else:
            sdk_date = wire.headers["X-Sdk-Date"]
            digits = [i for i, c in enumerate(sdk_date) if c.isdigit()]
            index = data.draw(st.sampled_from(digits))
            mutated = replace(
                wire, headers={**wire.headers, "X-Sdk-Date": _change_char(sdk_date, index, string.digits)}
            )
        _assert_refused(_send(client, server, mutated), kind)

    run()


def test_requests_signed_by_csscert_signing_verify_on_the_server(
    server: CsscertServer, account: Account, client: httpx.Client
) -> None:
    """The CLI client's signer (csscert.signing.sign_request) is accepted like the SDK's."""

    @settings(max_examples=40, deadline=None)
    @given(pairs=query_pairs, headers=extra_headers(), body=st.binary(max_size=32))
    def run(pairs: list[tuple[str, str]], headers: dict[str, str], body: bytes) -> None:
        query = _encode_query(pairs)
        url = server.download_url(account.project_id) + (f"?{query}" if query else "")
        sent = signing.sign_request(
            account.access, account.secret, "GET", url, {"Content-Type": "application/json", **headers}, body
        )
        response = client.request("GET", url, headers=sent, content=body or None)
        assert response.status_code == 200, response.text

    run()


# -- pure cross-checks with the SDK signer ------------------------------------------------

path_segments = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8), min_size=1, max_size=5
)


def _sdk_request(
    method: str, resource_path: str, pairs: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> SdkRequest:
    return SdkRequest(
        method=method,
        schema="https",
        host="css.example.test:8443",
        resource_path=resource_path,
        query_params=list(pairs),
        header_params=dict(headers),
        body=body,
    )


@_PURE_SETTINGS
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
    segments=path_segments,
    pairs=query_pairs,
    headers=extra_headers(),
    body=st.binary(max_size=64),
    content_type=st.sampled_from(_CONTENT_TYPES),
    moment=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)),
)
def test_csscert_signing_matches_the_sdk_signer(
    method: str,
    segments: list[str],
    pairs: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    moment: dt.datetime,
) -> None:
    resource_path = "/" + "/".join(quote(s, safe="") for s in segments)
    sdk_date = moment.strftime(signing.DATE_FORMAT)
    given_headers = {"Content-Type": content_type, "X-Sdk-Date": sdk_date, **headers}
    request = _sdk_request(method, resource_path, pairs, given_headers, body)
    Signer(BasicCredentials("AKEXAMPLE", "SECRET")).sign(request)
    sdk_authorization = request.header_params["Authorization"]

    # 1. The client side: csscert's signer signs the same URL to the same Authorization.
    url = "https://css.example.test:8443" + request.uri
    ours_headers = {"Content-Type": content_type, "X-Sdk-Date": sdk_date, **headers}
    if "X-Sdk-Content-Sha256" in request.header_params:
        ours_headers["X-Sdk-Content-Sha256"] = request.header_params["X-Sdk-Content-Sha256"]
    ours = signing.sign_request("AKEXAMPLE", "SECRET", method, url, ours_headers, body)
    assert ours["Authorization"] == sdk_authorization

    # 2. The server side: from the decoded path and raw query a server gets, the same signature.
    parsed = signing.parse_authorization(sdk_authorization)
    lowered = {k.lower(): str(v).strip() for k, v in request.header_params.items()}
    declared = (
        lowered.get(signing.CONTENT_HASH_HEADER)
        if signing.CONTENT_HASH_HEADER in parsed.signed_headers
        else None
    )
    parts = urlsplit(url)
    expected = signing.request_signature(
        b"SECRET",
        sdk_date,
        method,
        unquote(parts.path),
        parts.query,
        lowered,
        parsed.signed_headers,
        signing.payload_hash(body, declared),
        decoded_path=True,
    )
    assert signing.signatures_equal(expected, parsed.signature)


@_PURE_SETTINGS
@given(segments=path_segments, extra=st.text(max_size=3))
def test_canonical_uri_matches_the_sdk_for_any_path(segments: list[str], extra: str) -> None:
    for resource_path in (
        "/" + "/".join(quote(s, safe="") for s in segments),
        "/" + "/".join(segments) + extra,
    ):
        request = _sdk_request("GET", resource_path, [], {}, b"")
        sdk_uri = Signer(BasicCredentials("A", "S"))._process_canonical_uri(request)
        assert signing.canonical_uri(resource_path) == sdk_uri
        assert signing.canonical_uri(unquote(resource_path), decoded=True) == sdk_uri


@_PURE_SETTINGS
@given(pairs=query_pairs)
def test_canonical_query_matches_the_sdk_for_any_query(pairs: list[tuple[str, str]]) -> None:
    request = _sdk_request("GET", "/", pairs, {}, b"")
    Signer.process_request_uri(request)
    query = request.uri.partition("?")[2]
    assert signing.canonical_query(query) == Signer.process_canonical_query_string(request)
