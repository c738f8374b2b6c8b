"""Content negotiation and conditional requests for the download: pure functions of the request.

Which format (``?format=`` or ``Accept``, RFC 9110 12.5.1 with q-values), which truststore
password, and whether the client's copy is still current (If-None-Match / If-Modified-Since).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from csscert.errors import InvalidRequest, NotAcceptable, caller_text
from csscert.signing import parse_query

__all__ = [
    "FORMATS",
    "SUPPORTED_MEDIA_TYPES",
    "TRUSTSTORE_FORMATS",
    "accept_format",
    "cache_sizes",
    "choose_format",
    "not_modified",
]

FORMATS = ("pem", "der", "p7b", "jks", "p12", "json")
TRUSTSTORE_FORMATS = ("jks", "p12")
_DEFAULT = "pem"

_MEDIA_TYPES: dict[str, str] = {
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
SUPPORTED_MEDIA_TYPES = ", ".join(sorted(_MEDIA_TYPES))

_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


def accept_format(accept: str) -> str:
    """The format an Accept header asks for; wildcards (and no preference) mean the default."""
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QVALUE.fullmatch(value) else 0.0  # RFC 9110 12.4.2
        if quality <= 0 or not media:
            continue
        if media in ("*/*", "application/*"):
            fmt = _DEFAULT
        elif media in _MEDIA_TYPES:
            fmt = _MEDIA_TYPES[media]
        elif media.endswith("/*") and (
            match := next((f for m, f in _MEDIA_TYPES.items() if m.startswith(media[:-1])), None)
        ):
            fmt = match  # e.g. text/* -> text/plain (PEM)
        else:
            continue
        candidate = (-quality, position, fmt)
        if best is None or candidate < best:
            best = candidate
    if best is None:
        raise NotAcceptable(f"no supported media type in Accept; supported: {SUPPORTED_MEDIA_TYPES}, */*")
    return best[2]


# A memo of a pure function, so it may live as long as the process: bounded in entries and in
# key size (a caller controls the header; a long one is parsed every time instead of kept).
_accept_cache: dict[str, str] = {}
_ACCEPT_CACHE_ENTRIES = 256
_ACCEPT_CACHE_KEY_MAX = 256


def cache_sizes() -> dict[str, int]:
    """Entries of this module's memo (for metrics)."""
    return {"accept_formats": len(_accept_cache)}


def choose_format(query_string: str, accept: str | None) -> tuple[str, str | None]:
    """(format, truststore password) from ``format``/``password`` query parameters or Accept."""
    fmt: str | None = None
    password: str | None = None
    if query_string:
        for name, value in parse_query(query_string):
            if name == "format":
                if fmt is not None:
                    raise InvalidRequest("give 'format' once")
                if value.lower() not in FORMATS:
                    raise InvalidRequest(
                        f"unsupported format {caller_text(value)}; supported: {', '.join(FORMATS)}"
                    )
                fmt = value.lower()
            elif name == "password":
                if password is not None:
                    raise InvalidRequest("give 'password' once")
                password = value
    if fmt is None:
        if not accept:
            fmt = _DEFAULT
        else:
            fmt = _accept_cache.get(accept)
            if fmt is None:
                fmt = accept_format(accept)
                if len(_accept_cache) < _ACCEPT_CACHE_ENTRIES and len(accept) <= _ACCEPT_CACHE_KEY_MAX:
                    _accept_cache[accept] = fmt
    if password is not None and fmt not in ("jks", "p12"):
        raise InvalidRequest("'password' only applies to format=jks or format=p12")
    if password is not None and not (1 <= len(password) <= 128 and all(" " <= c <= "~" for c in password)):
        raise InvalidRequest(
            "the truststore password must be 1 to 128 printable ASCII characters (Java accepts no others)"
        )
    return fmt, password


def not_modified(etag: str, last_modified: float, headers: Mapping[str, str]) -> bool:
    """RFC 9110 13.1: If-None-Match (weak comparison) wins; else If-Modified-Since.

    An If-Modified-Since that is not a valid HTTP date, or lies in the future, is ignored.
    """
    inm = headers.get("if-none-match")
    if inm is not None:
        for tag in inm.split(","):
            tag = tag.strip()
            if tag == "*" or tag.removeprefix("W/") == etag:
                return True
        return False
    ims = headers.get("if-modified-since")
    if ims:
        try:
            parsed = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        if parsed.tzinfo is None:  # "-0000" and obsolete forms: HTTP dates are always GMT
            parsed = parsed.replace(tzinfo=dt.UTC)
        since = parsed.timestamp()
        if since > time.time():
            return False
        return int(last_modified) <= since
    return False
