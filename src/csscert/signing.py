"""SDK-HMAC-SHA256, the AK/SK request signature of the Huawei Cloud SDKs and API Gateway.

Written by hand because no library verifies it. The canonical form follows the official
signer exactly (``huaweicloudsdkcore.signer.Signer``):

* canonical URI: every path segment unquoted, then quoted with only ``~`` safe, and a
  trailing ``/`` always appended;
* canonical query: ``key=value`` pairs sorted, both sides quoted the same way;
* canonical headers: one ``name:value`` line per signed header, name lower-cased, value
  trimmed; the signed-header list joined with ``;``;
* payload: hex SHA-256 of the body, the empty-body hash when there is none, or the
  ``X-Sdk-Content-Sha256`` value (``UNSIGNED-PAYLOAD``) when the client declared one;
* string to sign: ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<hex sha256(canonical request)>``;
* signature: hex HMAC-SHA256 of that, keyed with the secret key.

This module is pure: it parses, canonicalises, signs and compares. Deciding who the access
key belongs to, and whether the date is fresh, is the identity layer's job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from csscert.errors import AuthenticationFailed, InvalidRequest

__all__ = [
    "ALGORITHM",
    "CONTENT_HASH_HEADER",
    "DATE_FORMAT",
    "EMPTY_BODY_SHA256",
    "UNSIGNED_PAYLOAD",
    "AuthorizationHeader",
    "QueryError",
    "SignatureFormatError",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "parse_authorization",
    "parse_query",
    "parse_sdk_date",
    "payload_hash",
    "quote_component",
    "request_signature",
    "sign_request",
    "signature",
    "signatures_equal",
    "string_to_sign",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CONTENT_HASH_HEADER = "x-sdk-content-sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<access>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_OTHER_ALGORITHMS = ("SDK-HMAC-SM3", "SDK-ECDSA-P256-SHA256", "SDK-SM2-SM3", "V11-HMAC-SHA256")
_SIGNED_HEADERS_RE = re.compile(r"[a-z0-9!#$%&'*+.^`|~-]+(?:;[a-z0-9!#$%&'*+.^`|~-]+)*")
# Characters quote(..., safe="~") never changes; a path made of them (and "/") is its own encoding.
_PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9_.~/-]*")
_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


class SignatureFormatError(AuthenticationFailed):
    """The Authorization header or X-Sdk-Date is not in the SDK-HMAC-SHA256 format."""


class QueryError(InvalidRequest):
    """The query string cannot be decoded (a percent-escape that is not UTF-8)."""


@dataclass(frozen=True, slots=True)
class AuthorizationHeader:
    access: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> AuthorizationHeader:
    """Parse the header exactly as the SDK writes it; the signature is 64 lower-case hex digits.

    Only the SDK's form is accepted (no upper-case hex), so no byte of a valid signature can
    be changed without the request being refused.
    """
    match = _AUTH_RE.match(value)
    if match is None:
        algorithm = value.split(" ", 1)[0]
        if algorithm in _OTHER_ALGORITHMS:
            raise SignatureFormatError(f"the signing algorithm {algorithm} is not supported; use {ALGORITHM}")
        raise SignatureFormatError(
            "Authorization must be 'SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<a;b>, Signature=<hex>'"
        )
    signed_list = match["signed"]
    signed = tuple(signed_list.split(";"))
    # Every name valid, and strictly increasing (== sorted and unique).
    if not _SIGNED_HEADERS_RE.fullmatch(signed_list) or any(a >= b for a, b in pairwise(signed)):
        raise SignatureFormatError("SignedHeaders must be sorted, unique, lower-case header names")
    return AuthorizationHeader(match["access"], signed, match["signature"])


def parse_sdk_date(value: str) -> dt.datetime:
    if not _DATE_RE.match(value):
        raise SignatureFormatError("X-Sdk-Date must be UTC in the form YYYYMMDDTHHMMSSZ")
    try:
        if len(value) != 16:  # "$" above lets a trailing newline through; strptime refused it
            raise ValueError(value)
        # The fixed-width fields strptime(DATE_FORMAT) reads, without its cost (~10 us).
        year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
        hour, minute, second = int(value[9:11]), int(value[11:13]), int(value[13:15])
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise SignatureFormatError("X-Sdk-Date is not a valid date") from exc


def _encode(text: str) -> str:
    return quote(text, safe="~")


def quote_component(text: str) -> str:
    """Percent-encode a path segment or query value exactly as the signer does."""
    return _encode(text)


def canonical_uri(path: str, *, decoded: bool = False) -> str:
    """``path`` as sent on the wire, or already percent-decoded (as servers hand it over)."""
    plain = path if decoded else unquote(path)
    if _PLAIN_PATH_RE.fullmatch(plain):
        encoded = plain  # nothing to quote (the usual case)
    else:
        encoded = "/".join(_encode(segment) for segment in plain.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """The query's (name, value) pairs, in order: THE meaning of a query string in csscert.

    The signature check (:func:`canonical_query`) and every handler read the query through this
    one function, so what a signature covers is exactly what the handler acts on. It decodes as
    HTML forms and every HTTP client library do: ``+`` is a space, ``%2B`` a plus; names
    without ``=`` have an empty value; empty parts are skipped; repeated names are kept.
    Percent-escapes must be UTF-8 (otherwise two different queries could decode alike).
    """
    if not query_string:
        return []
    try:
        return parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError("the query string is not valid UTF-8 percent-encoding") from exc


def canonical_query(query_string: str) -> str:
    """The query as the signer canonicalises it: pairs decoded by :func:`parse_query`, sorted,
    each side percent-encoded (a space as ``%20``, a plus as ``%2B``, as the SDK signs them)."""
    if not query_string:
        return ""
    pairs = sorted(parse_query(query_string))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload_hash: str,
    *,
    decoded_path: bool = False,
) -> str:
    """``headers`` maps lower-case names to values for every name in ``signed_headers``."""
    header_lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path, decoded=decoded_path),
            canonical_query(query_string),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def payload_hash(body: bytes, declared: str | None) -> str:
    """The canonical request's last line, as the signer computes it.

    ``declared`` is the ``X-Sdk-Content-Sha256`` value; callers verifying a request pass it
    only when that header is signed (the SDK signs it whenever it sets it).
    """
    if not body:
        return EMPTY_BODY_SHA256
    if declared:
        return declared
    return hashlib.sha256(body).hexdigest()


def string_to_sign(sdk_date: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret_key: bytes, to_sign: str) -> str:
    return hmac.digest(secret_key, to_sign.encode(), "sha256").hex()


def signatures_equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def request_signature(
    secret_key: bytes,
    sdk_date: str,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: str,
    *,
    decoded_path: bool = False,
) -> str:
    """The hex signature of one request: canonical request -> string to sign -> HMAC."""
    canonical = canonical_request(
        method, path, query_string, headers, signed_headers, payload, decoded_path=decoded_path
    )
    return signature(secret_key, string_to_sign(sdk_date, canonical))


def sign_request(
    access_key: str,
    secret_key: str,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Sign a request the way the SDK does; returns the headers to send (Host included).

    Every header given is signed (as the SDK signs every header it set itself).
    """
    parts = urlsplit(url)
    # Values are sent trimmed, as the SDK sends them (and as HTTP allows no edge whitespace).
    out = {name: str(value).strip() for name, value in (headers or {}).items()}
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if not any(name.lower() == "x-sdk-date" for name in out):
        out["X-Sdk-Date"] = moment.strftime(DATE_FORMAT)
    if not any(name.lower() == "host" for name in out):
        out["Host"] = parts.netloc
    lowered = {name.lower(): str(value).strip() for name, value in out.items()}
    signed = tuple(sorted(name for name in lowered if "_" not in name))
    declared = lowered.get(CONTENT_HASH_HEADER)
    hex_signature = request_signature(
        secret_key.encode(),
        lowered["x-sdk-date"],
        method,
        parts.path or "/",
        parts.query,
        lowered,
        signed,
        payload_hash(body, declared),
    )
    out["Authorization"] = (
        f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={hex_signature}"
    )
    return out
