"""Property tests of SDK-HMAC-SHA256: the SDK's own signer is the oracle, the real server the judge.

* Any request signed by ``huaweicloudsdkcore.signer.signer.Signer`` verifies against the real
  server; changing one byte of its method, path, query, a signed header, the body or the date
  makes the server refuse it (401 APIGW.0301; a method the route does not know is a 405).
* The CLI client's signer (``csscert.signing.sign_request``) is accepted like the SDK's.

That ``csscert.signing`` computes exactly what the SDK computes, without a server, is in
``tests/unit/test_signing_matches_the_sdk.py``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

import httpx
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.accounts import Account
from support.server import CsscertServer
from support.strategies import CONTENT_TYPES, VISIBLE, extra_headers, query_pairs

from csscert import signing

_SERVER_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_HEX = "0123456789abcdef"


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
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    headers = {"Content-Type": content_type, **draw(extra_headers())}
    if draw(st.booleans()):
        headers["X-Project-Id"] = account.project_id  # as BasicCredentials adds it
    body = draw(st.binary(max_size=48))
    method = "GET" if body or draw(st.booleans()) else "HEAD"
    return Case(_sdk_signed(account, server, method, pairs, headers, body), pairs, content_type)


def _send(http_client: httpx.Client, server: CsscertServer, wire: Wire) -> httpx.Response:
    url = server.url + wire.path + (f"?{wire.query}" if wire.query else "")
    request = http_client.build_request(wire.method, url, headers=wire.headers, content=wire.body or None)
    # httpx must not rewrite what was signed (it may add unsigned headers such as Accept).
    assert request.url.raw_path == (wire.path + (f"?{wire.query}" if wire.query else "")).encode()
    return http_client.send(request)


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
    server: CsscertServer, account: Account, http_client: httpx.Client
) -> None:
    @_SERVER_SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(signed_cases(account, server))
        wire = case.wire
        accepted = _send(http_client, server, wire)
        assert accepted.status_code == 200, (wire, accepted.text)

        kind = data.draw(st.sampled_from(["method", "path", "query", "header", "body", "date"]))
        if kind == "method":
            if wire.body:
                mutated = replace(
                    wire, method=_change_char(wire.method, data.draw(st.integers(0, 2)), "GETHADPOSX")
                )
                response = _send(http_client, server, mutated)
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
                    value = _change_char(value, data.draw(st.integers(0, len(value) - 1)), VISIBLE)
                elif key:
                    key = _change_char(key, data.draw(st.integers(0, len(key) - 1)), VISIBLE)
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
            changed = _change_char(value, data.draw(st.integers(0, len(value) - 1)), VISIBLE + " ")
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
                assert _send(http_client, server, mutated).status_code == 200
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
        _assert_refused(_send(http_client, server, mutated), kind)

    run()


def test_requests_signed_by_csscert_signing_verify_on_the_server(
    server: CsscertServer, account: Account, http_client: httpx.Client
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
        response = http_client.request("GET", url, headers=sent, content=body or None)
        assert response.status_code == 200, response.text

    run()
