"""``GET|HEAD /v1.0/{project_id}/cer/download``: translate the request, ask the view, answer bytes.

Every representation's bytes, ETag and headers are built once per trust-bundle change and
then served from memory; a request costs a dictionary lookup plus the identity checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from csscert.authority import TrustBundle
from csscert.errors import InvalidRequest, NotAcceptable
from csscert.service import View

__all__ = ["FORMATS", "Representation", "RepresentationCache", "choose_format", "not_modified"]

FORMATS = ("pem", "der", "p7b", "jks", "p12", "json")
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

_CONTENT: dict[str, tuple[str, str | None]] = {
    "pem": ("application/octet-stream", "CloudSearchService.cer"),
    "der": ("application/pkix-cert", "CloudSearchService.der"),
    "p7b": ("application/pkcs7-mime; smime-type=certs-only", "CloudSearchService.p7b"),
    "jks": ("application/x-pkcs12", "truststore.p12"),
    "p12": ("application/x-pkcs12", "truststore.p12"),
    "json": ("application/json", None),
}


@dataclass(frozen=True, slots=True)
class Representation:
    body: bytes
    etag: str
    last_modified: float
    headers: tuple[tuple[str, str], ...]  # everything but X-Request-Id
    not_modified_headers: tuple[tuple[str, str], ...]
    rebuild_at: float  # when the headers go stale (a CA enters its expiry-warning window)


_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


def _accept_format(accept: str) -> str:
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


_accept_cache: dict[str, str] = {}


def choose_format(query_string: str, accept: str | None) -> tuple[str, str | None]:
    """(format, truststore password) from ``format``/``password`` query parameters or Accept."""
    fmt: str | None = None
    password: str | None = None
    if query_string:
        try:
            params = parse_qsl(query_string, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest("the query string is not valid UTF-8 percent-encoding") from exc
        for name, value in params:
            if name == "format":
                if fmt is not None:
                    raise InvalidRequest("give 'format' once")
                if value.lower() not in FORMATS:
                    raise InvalidRequest(f"unsupported format {value!r}; supported: {', '.join(FORMATS)}")
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
                fmt = _accept_format(accept)
                if len(_accept_cache) < 256:
                    _accept_cache[accept] = fmt
    if password is not None and fmt not in ("jks", "p12"):
        raise InvalidRequest("'password' only applies to format=jks or format=p12")
    if password is not None and not (1 <= len(password) <= 128 and all(" " <= c <= "~" for c in password)):
        raise InvalidRequest(
            "the truststore password must be 1 to 128 printable ASCII characters (Java accepts no others)"
        )
    return fmt, password


def not_modified(rep: Representation, headers: Mapping[str, str]) -> bool:
    """RFC 9110 13.1: If-None-Match (weak comparison) wins; else If-Modified-Since.

    An If-Modified-Since that is not a valid HTTP date, or lies in the future, is ignored.
    """
    inm = headers.get("if-none-match")
    if inm is not None:
        for tag in inm.split(","):
            tag = tag.strip()
            if tag == "*" or tag.removeprefix("W/") == rep.etag:
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
        return int(rep.last_modified) <= since
    return False


class RepresentationCache:
    """Representations of the current view's bundles; emptied when the view changes."""

    def __init__(self, default_password: str) -> None:
        self._default_password = default_password
        self._view: View | None = None
        self._entries: dict[tuple[str, str, bytes], Representation] = {}

    def get(
        self, view: View, bundle: TrustBundle, fmt: str, password: str | None, now: float
    ) -> Representation:
        if view is not self._view:
            self._entries.clear()
            self._view = view
        secret = b""
        if fmt in ("jks", "p12"):
            secret = hashlib.sha256((password or self._default_password).encode()).digest()
        key = (bundle.scope, fmt, secret)
        rep = self._entries.get(key)
        if rep is None or rep.rebuild_at <= now:
            rep = self._build(bundle, fmt, password)
            if len(self._entries) >= 4096:
                self._entries.clear()
            self._entries[key] = rep
        return rep

    def _build(self, bundle: TrustBundle, fmt: str, password: str | None) -> Representation:
        if fmt == "pem":
            body = bundle.pem
        elif fmt == "der":
            body = bundle.der
        elif fmt == "p7b":
            body = bundle.p7b
        elif fmt == "json":
            body = bundle.json
        else:
            body = bundle.truststore(password or self._default_password)
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        content_type, filename = _CONTENT[fmt]
        common = [
            ("etag", etag),
            ("last-modified", bundle.last_modified_http),
            ("cache-control", "no-cache"),
        ]
        warning = bundle.expiry_warning()
        if warning:
            common.append(("warning", f'299 csscert "{warning}"'))
        common.append(("vary", "Accept"))
        headers = [("content-type", content_type), ("content-length", str(len(body))), *common]
        if filename:
            headers.append(("content-disposition", f'attachment; filename="{filename}"'))
        return Representation(
            body=body,
            etag=etag,
            last_modified=bundle.last_modified.timestamp(),
            headers=tuple(headers),
            not_modified_headers=tuple(common),
            rebuild_at=float("inf") if warning else bundle.warning_from,
        )
