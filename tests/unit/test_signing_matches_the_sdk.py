"""csscert's own ``signing`` module computes exactly what the official SDK signer computes.

In process, no server: the SDK's ``Signer`` signs generated requests and csscert's signer must
produce the same Authorization (the CLI client's side) and verify it from what a server sees:
the decoded path and the raw query (the server's side). Canonical URIs and queries are compared
with the SDK's own canonicalisation on any path and query.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, unquote, urlsplit

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from support.strategies import CONTENT_TYPES, extra_headers, query_pairs

from csscert import signing

_PURE_SETTINGS = settings(max_examples=100, deadline=None)


path_segments = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8), min_size=1, max_size=5
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
    content_type=st.sampled_from(CONTENT_TYPES),
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
