"""The AK/SK hot path's shortcuts answer exactly what the plain standard-library forms answer.

``parse_sdk_date`` reads the fixed-width fields instead of calling ``strptime``,
``canonical_uri`` skips ``quote`` for paths that need no quoting, ``signature`` uses the
one-shot ``hmac.digest`` and ``parse_authorization`` checks the SignedHeaders list with one
regex. Each is compared here with the slow form it replaced, on generated inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from csscert import signing


def outcome(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("ok", func(*args, **kwargs))
    except signing.SignatureFormatError as exc:
        return ("error", str(exc))


def reference_date(value: str) -> dt.datetime:
    if not re.match(r"^\d{8}T\d{6}Z$", value):
        raise signing.SignatureFormatError("X-Sdk-Date must be UTC in the form YYYYMMDDTHHMMSSZ")
    try:
        return dt.datetime.strptime(value, signing.DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise signing.SignatureFormatError("X-Sdk-Date is not a valid date") from exc


@st.composite
def sdk_dates(draw: st.DrawFn) -> str:
    fields = [draw(st.integers(0, 9999)), draw(st.integers(0, 14)), draw(st.integers(0, 33)),
              draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 62))]  # fmt: skip
    value = "{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}Z".format(*fields)
    return value + draw(st.sampled_from(["", "", "", "\n", " ", "Z"]))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(sdk_dates(), st.text(alphabet="0123456789TZ\n\u0662", max_size=18)))
def test_sdk_date_matches_strptime(value: str) -> None:
    assert outcome(signing.parse_sdk_date, value) == outcome(reference_date, value)


def reference_uri(path: str, decoded: bool) -> str:
    plain = path if decoded else unquote(path)
    encoded = "/".join(quote(segment, safe="~") for segment in plain.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from([*"/aZ09_.~-%20+;:?#@!$&'()*,= \n", "\u00e9", "\u4e2d"]), max_size=40),
    st.booleans(),
)
def test_canonical_uri_matches_quote(path: str, decoded: bool) -> None:
    assert signing.canonical_uri(path, decoded=decoded) == reference_uri(path, decoded)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.text(max_size=300))
def test_signature_matches_hmac_new(key: bytes, message: str) -> None:
    assert signing.signature(key, message) == hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^`|~-]+$")


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from([*"abxyz-_AZ09!~"]), max_size=6), max_size=5), st.booleans())
def test_signed_headers_must_be_sorted_unique_lowercase_tokens(names: list[str], sort: bool) -> None:
    if sort:
        names = sorted(names)
    header = f"SDK-HMAC-SHA256 Access=AKID, SignedHeaders={';'.join(names)}, Signature={'a' * 64}"
    valid = bool(names) and all(_NAME.match(n) for n in names) and names == sorted(set(names))
    result = outcome(signing.parse_authorization, header)
    if valid:
        assert result[0] == "ok" and result[1].signed_headers == tuple(names)
    else:
        assert result[0] == "error"
