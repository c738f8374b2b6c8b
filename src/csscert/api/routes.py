"""The route table: every path the service answers, in one place (in the spirit of moto's ``urls.py``).

A route is a path matcher, the methods it takes, its handler and the error shape its answers
use. :func:`resolve` tries them in order; the download is first, and its matcher is a few string
comparisons, so the hot path pays almost nothing for routing. A path no route matches gets the
gateway's 404 (APIGW.0101) in the CSS shape, or Keystone's 404 under ``/v3``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from csscert.api import acme, console, issuance, keystone, meta, status
from csscert.api.acme import ACME_SHAPE, acme_path
from csscert.api.crl import crl, is_crl_path
from csscert.api.download import download, is_download_path
from csscert.api.request import Request
from csscert.api.wire import CSS_SHAPE, KEYSTONE_SHAPE, ErrorShape, Response
from csscert.errors import RouteNotFound, caller_text
from csscert.service import Service

__all__ = ["ROUTES", "Handler", "Route", "resolve"]

Handler = Callable[[Service, Request], Awaitable[Response]]
_NOT_PUBLISHED = "The API does not exist or has not been published."


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # stable, low-cardinality: what logs and metrics call the route
    matches: Callable[[str], bool]
    methods: frozenset[str]
    handler: Handler
    shape: ErrorShape

    @property
    def allow(self) -> str:
        order = ("POST", "GET", "HEAD", "DELETE", "PUT", "PATCH")
        return ", ".join(m for m in order if m in self.methods)


def _exact(path: str) -> Callable[[str], bool]:
    return lambda candidate: candidate == path


def _keystone(path: str) -> Callable[[str], bool]:
    """Keystone answers its paths with or without a trailing slash."""
    return lambda candidate: candidate.rstrip("/") == path


def _keystone_pattern(pattern: str) -> Callable[[str], bool]:
    """A Keystone path with ``{}`` for one non-empty segment (an id): ``/v3/users/{}/projects``."""
    want = pattern.split("/")

    def matches(candidate: str) -> bool:
        got = candidate.rstrip("/").split("/")
        return len(got) == len(want) and all(
            (w == "{}" and g != "") or w == g for w, g in zip(want, got, strict=True)
        )

    return matches


_READ = frozenset({"GET", "HEAD"})
_GET, _POST, _POST_GET = frozenset({"GET"}), frozenset({"POST"}), frozenset({"POST", "GET"})


async def _gateway_not_found(service: Service, request: Request) -> Response:
    raise RouteNotFound(_NOT_PUBLISHED)


async def _keystone_not_found(service: Service, request: Request) -> Response:
    raise RouteNotFound(f"The resource could not be found: {caller_text(request.path)}")


_ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

DOWNLOAD = Route("download", is_download_path, _READ, download, CSS_SHAPE)
ROUTES: tuple[Route, ...] = (
    DOWNLOAD,
    Route(
        "keystone.tokens",
        _keystone("/v3/auth/tokens"),
        frozenset({"POST", "GET", "HEAD", "DELETE"}),
        keystone.tokens,
        KEYSTONE_SHAPE,
    ),
    Route("keystone.version", _keystone("/v3"), _READ, keystone.version, KEYSTONE_SHAPE),
    Route("keystone.projects", _keystone("/v3/projects"), _READ, keystone.projects, KEYSTONE_SHAPE),
    Route(
        "keystone.auth_projects",
        _keystone("/v3/auth/projects"),
        _READ,
        keystone.auth_projects,
        KEYSTONE_SHAPE,
    ),
    Route(
        "keystone.auth_domains", _keystone("/v3/auth/domains"), _READ, keystone.auth_domains, KEYSTONE_SHAPE
    ),
    Route(
        "keystone.auth_catalog", _keystone("/v3/auth/catalog"), _READ, keystone.auth_catalog, KEYSTONE_SHAPE
    ),
    Route("keystone.project", _keystone_pattern("/v3/projects/{}"), _READ, keystone.project, KEYSTONE_SHAPE),
    Route(
        "keystone.user_projects",
        _keystone_pattern("/v3/users/{}/projects"),
        _READ,
        keystone.user_projects,
        KEYSTONE_SHAPE,
    ),
    Route("root", _exact("/"), _READ, meta.root, CSS_SHAPE),
    Route("healthz", _exact("/healthz"), _READ, status.healthz, CSS_SHAPE),
    Route("readyz", _exact("/readyz"), _READ, status.readyz, CSS_SHAPE),
    Route("metrics", _exact("/metrics"), _READ, status.metrics, CSS_SHAPE),
    Route("openapi", _exact("/openapi.json"), _READ, meta.openapi, CSS_SHAPE),
    Route("crl", is_crl_path, _READ, crl, CSS_SHAPE),
    Route("certificates", issuance.is_certificates_path, _POST_GET, issuance.certificates, CSS_SHAPE),
    Route("certificate", issuance.is_certificate_path, _GET, issuance.certificate, CSS_SHAPE),
    Route("certificate.revoke", issuance.is_revoke_path, _POST, issuance.revoke, CSS_SHAPE),
    Route("acme.directory", acme_path("directory"), _READ, acme.directory, ACME_SHAPE),
    Route("acme.new_nonce", acme_path("new-nonce"), _READ, acme.new_nonce, ACME_SHAPE),
    Route("acme.new_account", acme_path("new-account"), _POST, acme.new_account, ACME_SHAPE),
    Route("acme.account", acme_path("acct"), _POST, acme.account, ACME_SHAPE),
    Route("acme.account_orders", acme_path("acct", "orders"), _POST, acme.account_orders, ACME_SHAPE),
    Route("acme.new_order", acme_path("new-order"), _POST, acme.new_order, ACME_SHAPE),
    Route("acme.order", acme_path("order"), _POST, acme.order, ACME_SHAPE),
    Route("acme.finalize", acme_path("order", "finalize"), _POST, acme.finalize, ACME_SHAPE),
    Route("acme.authz", acme_path("authz"), _POST, acme.authorization, ACME_SHAPE),
    Route("acme.challenge", acme_path("chall"), _POST, acme.challenge, ACME_SHAPE),
    Route("acme.certificate", acme_path("cert"), _POST, acme.certificate, ACME_SHAPE),
    Route("acme.revoke_cert", acme_path("revoke-cert"), _POST, acme.revoke_cert, ACME_SHAPE),
    Route("acme.key_change", acme_path("key-change"), _POST, acme.key_change, ACME_SHAPE),
    Route("console", console.is_console_path, _READ | _POST, console.handle, console.HTML_SHAPE),
)
_KEYSTONE_FALLBACK = Route("keystone.not_found", lambda _: True, _ANY, _keystone_not_found, KEYSTONE_SHAPE)
_FALLBACK = Route("not_found", lambda _: True, _ANY, _gateway_not_found, CSS_SHAPE)


def resolve(path: str) -> Route:
    """The route for ``path``; never fails (unknown paths get a not-found route)."""
    if is_download_path(path):  # the hot path: no loop, no indirect call
        return DOWNLOAD
    for route in ROUTES:
        if route.matches(path):
            return route
    if path == "/v3" or path.startswith("/v3/"):
        return _KEYSTONE_FALLBACK
    return _FALLBACK
