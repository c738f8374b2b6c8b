"""``GET|HEAD /v1.0/{project_id}/cer/download``: translate the request, ask the read model, answer bytes.

Every representation's bytes, ETag and headers are built once per trust bundle and then served
from memory; they hang on the :class:`~csscert.ca.TrustBundle` they were built from, so they die
with it when the scope's CAs change (docs/architecture.md, "Cache lifetimes"). A request costs
the identity checks plus a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from csscert.api.negotiation import TRUSTSTORE_FORMATS, choose_format, not_modified
from csscert.api.request import Request
from csscert.api.wire import Response
from csscert.ca import TrustBundle
from csscert.cache import stats_of
from csscert.errors import InvalidRequest, ResourceNotFound
from csscert.identity.authenticators import authenticate, known_token
from csscert.model import PROJECT_ID_RE, Project
from csscert.service import Service

__all__ = [
    "PATH_PREFIX",
    "PATH_SUFFIX",
    "Representation",
    "download",
    "is_download_path",
    "representation_for",
]

PATH_PREFIX = "/v1.0/"
PATH_SUFFIX = "/cer/download"
_MIN_PATH = len(PATH_PREFIX) + len(PATH_SUFFIX)
_REPRESENTATIONS_KEPT = 64  # per bundle: (format, truststore password hash)
_REPRESENTATION_STATS = stats_of("representations")  # [hits, misses], for the metrics


def is_download_path(path: str) -> bool:
    """``/v1.0/<one segment>/cer/download``: the first and cheapest match of the route table."""
    return (
        path.startswith(PATH_PREFIX)
        and path.endswith(PATH_SUFFIX)
        and len(path) >= _MIN_PATH
        and "/" not in path[len(PATH_PREFIX) : -len(PATH_SUFFIX)]
    )


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


def _build(bundle: TrustBundle, fmt: str, password: str) -> Representation:
    if fmt == "pem":
        body = bundle.pem
    elif fmt == "der":
        body = bundle.der
    elif fmt == "p7b":
        body = bundle.p7b
    elif fmt == "json":
        body = bundle.json
    else:
        body = bundle.truststore(password)
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


def _key(fmt: str, password: str | None, default_password: str) -> tuple[tuple[str, bytes], str]:
    """The cache key of a representation (no password stays in memory: only its hash) and the
    password to build it with."""
    if fmt in TRUSTSTORE_FORMATS:
        password = password or default_password
        return (fmt, hashlib.sha256(password.encode()).digest()), password
    return (fmt, b""), ""


def _keep(bundle: TrustBundle, key: tuple[str, bytes], rep: Representation) -> Representation:
    entries = bundle.representations
    if len(entries) >= _REPRESENTATIONS_KEPT:
        entries.clear()
    entries[key] = rep
    return rep


async def _built_off_loop(service: Service, bundle: TrustBundle, fmt: str, password: str) -> Representation:
    """A truststore costs milliseconds of CPU (PBKDF2 and MACs): it is built on a thread, never
    on the event loop, and at most ``truststore_builders`` at a time per worker (one caller with
    a new password per request then waits for a builder instead of taking the worker)."""
    async with service.truststore_builders:
        return await asyncio.to_thread(_build, bundle, fmt, password)


async def download(service: Service, request: Request) -> Response:
    """The CSS download. Method, path shape and error shape were settled by the route table."""
    path = request.path
    project_id = path[len(PATH_PREFIX) : -len(PATH_SUFFIX)]
    if not PROJECT_ID_RE.fullmatch(project_id):  # fullmatch: "$" would accept a trailing newline
        raise InvalidRequest("project_id must be 32 lower-case hexadecimal characters")
    headers = request.headers
    feed = service.feed
    if feed.behind():
        await feed.catch_up()
    directory = service.directory
    now = service.now()
    # The warm path never suspends: a remembered token verdict and a cached project answer
    # without creating a coroutine; anything else takes the general (possibly loading) path.
    token = headers.get("x-auth-token")
    principal = known_token(directory, token, now) if token else None
    if principal is None:
        principal = await authenticate(
            directory, request.method, path, request.query_string, headers, request.body, now
        )
    request.caller_user = principal.user.id
    request.caller_credential = principal.credential
    service.limits.check_credential(principal.credential, now)
    project = directory.projects.get(project_id)
    if isinstance(project, Project):
        directory.authorize(principal, project_id, project, headers.get("x-project-id"))
    else:
        await directory.authorize_project(principal, project_id, headers.get("x-project-id"))
    request.project_id = project_id
    fmt, password = choose_format(request.query_string, headers.get("accept"))
    trust = service.trust
    bundle = trust.cached(project_id) or await trust.bundle(project_id)
    if bundle is None:
        raise ResourceNotFound("the project has no certificate authority yet")
    key, password = _key(fmt, password, service.truststore_default_password)
    rep: Representation | None = bundle.representations.get(key)  # type: ignore[assignment]
    if rep is not None and rep.rebuild_at > now:  # the hit stays inline: no coroutine per request
        _REPRESENTATION_STATS[0] += 1
    else:
        rep = await _rebuild(service, bundle, key, fmt, password)
    rid = request.request_id
    if not_modified(rep.etag, rep.last_modified, headers):
        return 304, [*rep.not_modified_headers, ("x-request-id", rid)], b""
    return 200, [*rep.headers, ("x-request-id", rid)], rep.body


async def representation_for(
    service: Service, bundle: TrustBundle, fmt: str, password: str | None
) -> Representation:
    """What :func:`download` serves for ``bundle``, ``fmt`` and truststore ``password`` (None:
    the default), from the same cache: the console's download buttons give exactly these bytes."""
    key, password = _key(fmt, password, service.truststore_default_password)
    rep: Representation | None = bundle.representations.get(key)  # type: ignore[assignment]
    if rep is not None and rep.rebuild_at > service.now():
        _REPRESENTATION_STATS[0] += 1
        return rep
    return await _rebuild(service, bundle, key, fmt, password)


async def _rebuild(
    service: Service, bundle: TrustBundle, key: tuple[str, bytes], fmt: str, password: str
) -> Representation:
    """A representation missing or due for rebuilding: built (a truststore off the event loop)
    and kept on the bundle for the next request."""
    _REPRESENTATION_STATS[1] += 1
    if fmt in TRUSTSTORE_FORMATS:
        return _keep(bundle, key, await _built_off_loop(service, bundle, fmt, password))
    return _keep(bundle, key, _build(bundle, fmt, ""))
