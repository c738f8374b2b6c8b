"""Content negotiation of the download, in process: ``format``/``password`` query parameters and Accept.

The ``format`` parameter beats Accept; Accept follows RFC 9110 (quality values, the first of equal
quality wins, invalid q means 0, wildcards mean the default PEM, ``type/*`` the first supported
subtype); a truststore password must be 1 to 128 printable ASCII characters and only goes with
``jks``/``p12``. What the server answers over HTTP is in ``tests/api/test_formats.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

# csscert internals under test (re-point here when they move).
from csscert.api.negotiation import FORMATS, accept_format, choose_format
from csscert.errors import InvalidRequest, NotAcceptable

#: Every media type the download serves, and the format it asks for.
MEDIA_TYPES = {
    "application/octet-stream": "pem",
    "application/x-pem-file": "pem",
    "application/pem-certificate-chain": "pem",
    "application/x-x509-ca-cert": "pem",
    "text/plain": "pem",
    "application/pkix-cert": "der",
    "application/pkcs7-mime": "p7b",
    "application/x-pkcs7-certificates": "p7b",
    "application/x-pkcs12": "p12",
    "application/x-java-keystore": "jks",
    "application/json": "json",
}
NON_PEM = {media: fmt for media, fmt in MEDIA_TYPES.items() if fmt != "pem"}


# -- Accept ---------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/*", "*/*; q=0.5", "*/*;q=0.001"])
def test_no_preference_or_a_wildcard_means_pem(accept: str | None) -> None:
    assert choose_format("", accept) == ("pem", None)


@pytest.mark.parametrize(("media", "fmt"), sorted(MEDIA_TYPES.items()))
def test_each_supported_media_type_selects_its_format(media: str, fmt: str) -> None:
    assert choose_format("", media) == (fmt, None)
    assert choose_format("", media.upper() + " ; charset=utf-8") == (fmt, None)  # case and parameters


def test_a_browser_accept_header_gets_pem() -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    assert accept_format(browser) == "pem"


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("application/json;q=0.4, */*;q=0.5", "pem"),
        ("application/json;q=1.000, */*;q=0.5", "json"),
        ("application/json;q=0.2, application/pkix-cert", "der"),
        ("text/html, application/json;q=0.5", "json"),
        ("application/json, application/pkix-cert", "json"),  # equal quality: the first wins
        ("application/pkix-cert, application/json", "der"),
        ("application/json;q=0.5, application/pkix-cert;q=0.5", "json"),
        ("application/json;Q=0.9, application/pkix-cert;q=1", "der"),  # the parameter name is case-blind
    ],
)
def test_the_highest_quality_wins_and_then_the_first_listed(accept: str, fmt: str) -> None:
    assert accept_format(accept) == fmt


@pytest.mark.parametrize("q", ["nan", "inf", "-1", "2", "1.0001", "0.1234", "1e0", "", ".5", "0x1"])
def test_an_invalid_quality_value_counts_as_zero(q: str) -> None:
    assert accept_format(f"application/json;q={q}, */*;q=0.5") == "pem"
    with pytest.raises(NotAcceptable):
        accept_format(f"application/json;q={q}")


def test_type_wildcards_pick_the_first_supported_subtype() -> None:
    assert accept_format("text/*") == "pem"  # text/plain
    assert accept_format("TEXT/*;q=0.3") == "pem"
    assert accept_format("image/*, text/*;q=0.1") == "pem"


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml", "image/*", "application/json;q=0", "*/*;q=0", ",", ";q=1"]
)
def test_nothing_acceptable_is_not_acceptable_and_lists_what_is(accept: str) -> None:
    with pytest.raises(NotAcceptable) as refused:
        choose_format("", accept)
    for media in ("application/octet-stream", "application/pkix-cert", "application/pkcs7-mime",
                  "application/x-pkcs12", "application/json", "*/*"):  # fmt: skip
        assert media in str(refused.value)


_SUPPORTED = st.sampled_from(sorted(NON_PEM))
_QVALUE = st.integers(1, 1000).map(lambda n: ("1" if n == 1000 else f"0.{n:03d}", n))


@settings(max_examples=300, deadline=None)
@given(first=_SUPPORTED, second=_SUPPORTED, q1=_QVALUE, q2=_QVALUE)
def test_quality_decides_between_two_media_types(
    first: str, second: str, q1: tuple[str, int], q2: tuple[str, int]
) -> None:
    chosen = accept_format(f"{first};q={q1[0]}, {second} ; q={q2[0]}")
    expected = second if q2[1] > q1[1] else first
    assert chosen == NON_PEM[expected]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
@example("application/json;q=nan")
@example(",,,;;;=")
@example("*/*;q=1e999")
def test_any_accept_header_gives_a_format_or_not_acceptable(accept: str) -> None:
    try:
        fmt = accept_format(accept)
    except NotAcceptable:
        return
    assert fmt in FORMATS


# -- the format and password parameters -------------------------------------------------------


def test_the_format_parameter_beats_accept_and_ignores_case() -> None:
    assert choose_format("format=pem", "text/html") == ("pem", None)
    assert choose_format("format=p%31%32", None) == ("p12", None)  # percent-decoded first
    assert choose_format("format=PEM", None) == ("pem", None)
    assert choose_format("format=Der", "application/json") == ("der", None)
    for fmt in FORMATS:
        assert choose_format(f"format={fmt}", None)[0] == fmt


@pytest.mark.parametrize("value", ["pfx", "", "PEM2", "jks;pem", "%00", "p%31%33"])
def test_an_unsupported_format_is_refused_listing_the_supported_ones(value: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        choose_format(f"format={value}", None)
    for fmt in FORMATS:
        assert fmt in str(refused.value)


@pytest.mark.parametrize(
    "query", ["format=pem&format=der", "format=pem&format=pem", "format=p12&password=a&password=b"]
)
def test_a_repeated_parameter_is_refused(query: str) -> None:
    with pytest.raises(InvalidRequest, match="once"):
        choose_format(query, None)


def test_other_query_parameters_are_ignored() -> None:
    assert choose_format("a=1&b&format=json&c=", None) == ("json", None)


def test_a_query_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        choose_format("format=%ff", None)


def test_a_password_only_goes_with_a_truststore() -> None:
    assert choose_format("format=p12&password=secret1", None) == ("p12", "secret1")
    assert choose_format("format=jks&password=secret1", None) == ("jks", "secret1")
    assert choose_format("password=secret1", "application/x-pkcs12") == ("p12", "secret1")
    for query, accept in (("password=secret1", None), ("format=der&password=secret1", None),
                          ("password=secret1", "application/json")):  # fmt: skip
        with pytest.raises(InvalidRequest, match="only applies"):
            choose_format(query, accept)


@pytest.mark.parametrize("password", ["", "x" * 129, "pässword", "tab%09here", "new%0Aline", "%7F"])
def test_a_password_outside_1_to_128_printable_ascii_is_refused(password: str) -> None:
    with pytest.raises(InvalidRequest, match="password"):
        choose_format(f"format=p12&password={password}", None)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128))
def test_every_printable_ascii_password_of_1_to_128_characters_is_accepted(password: str) -> None:
    from urllib.parse import quote

    assert choose_format(f"format=jks&password={quote(password, safe='')}", None) == ("jks", password)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60), st.one_of(st.none(), st.text(max_size=30)))
def test_any_query_gives_a_format_or_a_clear_refusal(query: str, accept: str | None) -> None:
    try:
        fmt, password = choose_format(query, accept)
    except (InvalidRequest, NotAcceptable) as refusal:
        assert str(refusal)
        return
    assert fmt in FORMATS
    assert password is None or fmt in ("jks", "p12")
