"""One meaning per signed request: what the AK/SK signature covers is exactly what the handler reads.

The finding: a request signed with ``?password=a%2Bb`` was also accepted as ``?password=a+b``
(the canonical query decoded ``+`` as a plus, the handler as a space), and the two returned
different truststores. Now one parser (``signing.parse_query``: ``+`` and ``%20`` are a space,
``%2B`` a plus) serves both, so two query strings share a signature only if they mean the same.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.accounts import Account, new_account
from support.server import CsscertServer
from support.signing import sdk_sign

from csscert import signing
from csscert.api.negotiation import choose_format
from csscert.errors import InvalidRequest

# -- pure: the signature's view and the handler's view of any query string agree -------------

_PIECES = st.sampled_from(
    ["a", "b", "+", "%2B", "%20", "%2b", " ", "=", "&", "format", "password", "p12", ""]
)
raw_queries = st.lists(_PIECES, max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(first=raw_queries, second=raw_queries)
def test_two_queries_share_a_canonical_form_only_if_they_mean_the_same(first: str, second: str) -> None:
    if signing.canonical_query(first) == signing.canonical_query(second):
        assert sorted(signing.parse_query(first)) == sorted(signing.parse_query(second))


@settings(max_examples=400, deadline=None)
@given(query=raw_queries)
def test_the_handler_reads_exactly_the_pairs_the_signature_covers(query: str) -> None:
    pairs = signing.parse_query(query)
    canonical = "&".join(
        f"{signing.quote_component(k)}={signing.quote_component(v)}" for k, v in sorted(pairs)
    )
    assert signing.canonical_query(query) == canonical
    try:
        fmt, password = choose_format(query, None)
    except InvalidRequest:
        return
    assert [v.lower() for k, v in pairs if k == "format"] in ([], [fmt])
    assert [v for k, v in pairs if k == "password"] == ([] if password is None else [password])


def test_plus_is_a_space_for_the_signature_and_the_handler_alike() -> None:
    assert signing.canonical_query("password=a+b") == signing.canonical_query("password=a%20b")
    assert signing.canonical_query("password=a+b") != signing.canonical_query("password=a%2Bb")
    assert choose_format("format=p12&password=a+b", None) == ("p12", "a b")
    assert choose_format("format=p12&password=a%2Bb", None) == ("p12", "a+b")


def test_a_query_that_is_not_utf8_is_refused_not_guessed() -> None:
    with pytest.raises(InvalidRequest):
        signing.canonical_query("password=%FF")


# -- against the real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(server: CsscertServer) -> Account:
    return new_account(server, prefix="query")


def _opens_with(body: bytes, password: str) -> bool:
    try:
        pkcs12.load_pkcs12(body, password.encode())
    except ValueError:
        return False
    return True


@st.composite
def reencodings(draw: st.DrawFn) -> tuple[list[tuple[str, str]], str]:
    """Pairs the SDK signs, and a query string a client might send for them instead."""
    password = draw(st.text(alphabet="ab+ ", min_size=1, max_size=6).filter(lambda p: p.strip(" ") == p))
    pairs = [("format", "p12"), ("password", password)]
    extra = draw(
        st.lists(st.tuples(st.sampled_from(["note", "x"]), st.sampled_from(["", "a", "a+b"])), max_size=2)
    )
    pairs += extra  # empty values and repeated names too
    parts = []
    for name, value in pairs:
        encoded = "".join(
            draw(st.sampled_from(["+", "%20"]))
            if c == " "
            else draw(st.sampled_from(["%2B", "+"]))
            if c == "+"
            else c
            for c in value
        )
        parts.append(f"{name}={encoded}")
    return pairs, "&".join(parts)


def test_sdk_signed_queries_are_accepted_exactly_when_the_sent_query_means_what_was_signed(
    server: CsscertServer, account: Account
) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=reencodings())
    def run(case: tuple[list[tuple[str, str]], str]) -> None:
        pairs, sent_query = case
        signed_url, headers = sdk_sign(
            account.access, account.secret, "GET", server.download_url(account.project_id), query=pairs
        )
        path = urlsplit(signed_url).path
        response = httpx.get(f"{server.url}{path}?{sent_query}", headers=headers, timeout=10)
        means_the_same = sorted(parse_qsl(sent_query, keep_blank_values=True)) == sorted(pairs)
        if not means_the_same:
            assert response.status_code == 401, (sent_query, pairs, response.text)
            return
        assert response.status_code == 200, (sent_query, pairs, response.text)
        password = dict(pairs)["password"]
        assert _opens_with(response.content, password), (sent_query, password)

    run()


@pytest.mark.parametrize(
    ("query", "password"),
    [("a+b", "a b"), ("a%20b", "a b"), ("a%2Bb", "a+b"), ("a%2bb", "a+b"), ("a++", "a  ")],
)
def test_direct_requests_read_plus_as_a_space_and_percent_2b_as_a_plus(
    server: CsscertServer, admin_token: str, query: str, password: str
) -> None:
    response = httpx.get(
        f"{server.download_url()}?format=p12&password={query}", headers={"X-Auth-Token": admin_token}
    )
    assert response.status_code == 200, response.text
    assert _opens_with(response.content, password)
