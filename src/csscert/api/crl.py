"""``GET|HEAD /v1.0/crl/{ca-fingerprint}.crl``: a CA's certificate revocation list, public, DER.

The path is the CRL distribution point of every certificate csscert issues. No credentials: a
TLS client checking a server's certificate has none for csscert. The answer comes from the
worker's :class:`~csscert.ca.crls.CrlCache` (a revocation anywhere evicts it through the change
log); it carries ``Cache-Control: max-age`` up to the moment this worker re-signs (never past the
CRL's ``nextUpdate``), an ``ETag`` over the signed content and ``Last-Modified`` = thisUpdate.
"""

from __future__ import annotations

from csscert.api.negotiation import not_modified
from csscert.api.request import Request
from csscert.api.wire import Response
from csscert.errors import ResourceNotFound
from csscert.service import Service

__all__ = ["CRL_PREFIX", "crl", "is_crl_path"]

CRL_PREFIX = "/v1.0/crl/"
_SUFFIX = ".crl"
_HEX = frozenset("0123456789abcdef")


def is_crl_path(path: str) -> bool:
    return path.startswith(CRL_PREFIX) and path.endswith(_SUFFIX)


async def crl(service: Service, request: Request) -> Response:
    fingerprint = request.path[len(CRL_PREFIX) : -len(_SUFFIX)].lower()
    if len(fingerprint) != 64 or not _HEX.issuperset(fingerprint):
        raise ResourceNotFound(
            "no CRL here: the path is /v1.0/crl/<the CA's SHA-256 fingerprint, 64 hex>.crl"
        )
    feed = service.feed
    if feed.behind():
        await feed.catch_up()
    now = service.now()
    crls = service.crls
    document = crls.cached(fingerprint, now) or await crls.get(fingerprint, now)
    if document is None:
        raise ResourceNotFound(f"no CA with SHA-256 fingerprint {fingerprint}")
    # refresh_at comes before nextUpdate (half the validity before it): a cache keeps the CRL
    # until this worker would re-sign it anyway, never past the CRL's own nextUpdate.
    max_age = max(0, int(document.refresh_at.timestamp() - now))
    last_modified = document.this_update.timestamp()
    common = [
        ("etag", document.etag),
        ("last-modified", document.last_modified_http),
        ("cache-control", f"public, max-age={max_age}"),
        ("x-request-id", request.request_id),
    ]
    if not_modified(document.etag, last_modified, request.headers):
        return 304, common, b""
    headers = [("content-type", "application/pkix-crl"), ("content-length", str(len(document.der))), *common]
    return 200, headers, document.der
