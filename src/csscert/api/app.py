"""The HTTP application: a framework-free RSGI callable (served by granian) plus an ASGI adapter.

Request pipeline for every route: request id -> routing -> authentication (identity layer)
-> handler -> response. Handlers translate between the wire and the authority/identity
layers; they hold no certificate or credential logic of their own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

from csscert.api.download import RepresentationCache, choose_format, not_modified
from csscert.api.keystone import KeystoneRequest, handle_keystone, version_choices
from csscert.api.wire import Response, css_error, json_response, keystone_error, new_request_id
from csscert.errors import (
    AccessDenied,
    AuthenticationFailed,
    InvalidRequest,
    NotAcceptable,
    ResourceNotFound,
)
from csscert.model import PROJECT_ID_RE
from csscert.service import Service
from csscert.settings import Settings

__all__ = ["App", "create_app"]

log = logging.getLogger("csscert.api")

_PREFIX = "/v1.0/"
_SUFFIX = "/cer/download"
_MAX_BODY = 64 * 1024
_KEYSTONE_INTERNAL = "An unexpected error prevented the server from fulfilling your request."
_TOO_LARGE = b"\x00too-large"  # marker: no real body starts with a NUL byte and says this
_MIN_DOWNLOAD_PATH = len(_PREFIX) + len(_SUFFIX)
_ALLOW_DOWNLOAD = [("allow", "GET, HEAD")]
_NOT_PUBLISHED = "The API does not exist or has not been published."
_ERROR_CODES: list[tuple[type[Exception], str]] = [
    (AuthenticationFailed, "APIGW.0301"),
    (InvalidRequest, "CSS.0001"),
    (AccessDenied, "CSS.0015"),
    (ResourceNotFound, "CSS.0016"),
]


def _settle_heap() -> None:
    """Take what start-up built (~65k objects: imports, settings, store) out of the collector's
    way, so that a full collection while serving walks only what requests made (about 50 ms
    less of a pause, on the event loop)."""
    gc.collect()
    gc.freeze()


def _openapi_document() -> bytes:
    return resources.files("csscert.api").joinpath("openapi.json").read_bytes()


class App:
    """One per worker process. ``__rsgi__`` is the hot path; ``__call__`` speaks ASGI."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._representations = RepresentationCache(
            service.settings.truststore_default_password.get_secret_value()
        )
        self._openapi: bytes | None = None

    # -- servers ------------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.service.start_watching()
        _settle_heap()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.service.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        headers = scope.headers
        method = scope.method
        body = b""
        # A body is read whatever the method: an AK/SK signature covers it, even on a GET.
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if method not in ("GET", "HEAD") or has_body:
            body = await self._read_body(headers, protocol)
        status, out_headers, out_body = await self.handle(
            method, scope.path, scope.query_string, headers, body, scope.scheme
        )
        if method == "HEAD" or not out_body:
            if method == "HEAD" and out_body and all(name != "content-length" for name, _ in out_headers):
                # On GET the server adds the length of the body; HEAD must announce the same one.
                out_headers = [*out_headers, ("content-length", str(len(out_body)))]
            protocol.response_empty(status, out_headers)
        else:
            protocol.response_bytes(status, out_headers, out_body)

    @staticmethod
    async def _read_body(headers: Any, protocol: Any) -> bytes:
        """The request body, or the too-large marker as soon as it passes the limit (a chunked
        body has no Content-Length to check up front, so it is counted while it streams)."""
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
            return _TOO_LARGE
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            size += len(chunk)
            if size > _MAX_BODY:
                return _TOO_LARGE
            chunks.append(chunk)
        return b"".join(chunks)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.service.start_watching()
                    _settle_heap()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.service.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > _MAX_BODY:
                body = _TOO_LARGE
                break
        query = scope.get("query_string", b"").decode("latin-1")
        status, out_headers, out_body = await self.handle(
            scope["method"], scope["path"], query, headers, body, scope.get("scheme", "http")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else out_body})

    # -- routing ------------------------------------------------------------------------

    async def handle(
        self, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes, scheme: str
    ) -> Response:
        rid = new_request_id()
        try:
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX) and len(path) >= _MIN_DOWNLOAD_PATH:
                return self.download(method, path, query_string, headers, body, rid)
            if path == "/v3" or path.startswith("/v3/"):
                return await self._keystone(method, path, query_string, headers, body, scheme, rid)
            if path in ("/", "/healthz", "/openapi.json"):
                if method not in ("GET", "HEAD"):
                    return css_error(
                        "CSS.0001", "this API only supports GET and HEAD", rid, _ALLOW_DOWNLOAD, status=405
                    )
                if path == "/":  # also Keystone's root: version discovery for auth_url=<base URL>
                    versions = version_choices(self._base_url(headers, scheme))
                    return json_response(200, {"status": "ok", "service": "csscert", **versions}, rid)
                if path != "/openapi.json":
                    return json_response(200, {"status": "ok", "service": "csscert"}, rid)
                if self._openapi is None:
                    self._openapi = _openapi_document()
                return 200, [("content-type", "application/json"), ("x-request-id", rid)], self._openapi
            return css_error("APIGW.0101", _NOT_PUBLISHED, rid)
        except Exception:
            log.exception("request %s failed: %s %r", rid, method, path[:200])
            return css_error("CSS.9999", "Failed to process the request.", rid)

    async def _keystone(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        body: bytes,
        scheme: str,
        rid: str,
    ) -> Response:
        """Keystone routes answer every error, internal ones included, in Keystone's shape."""
        if body == _TOO_LARGE:
            return keystone_error(413, f"the request body is larger than {_MAX_BODY} bytes", rid)
        try:
            base_url = self._base_url(headers, scheme)
            request = KeystoneRequest(method, path, query_string, headers, body, rid, base_url)
            return await handle_keystone(self.service, request)
        except Exception:
            log.exception("request %s failed: %s %r", rid, method, path[:200])
            return keystone_error(500, _KEYSTONE_INTERNAL, rid)

    def _base_url(self, headers: Mapping[str, str], scheme: str) -> str:
        configured = self.service.settings.public_url
        if configured:
            return configured.rstrip("/")
        host = headers.get("host")
        if host and all(c.isalnum() or c in ".-:[]_" for c in host):
            return f"{scheme}://{host}"
        return self.service.settings.public_base_url()

    def download(
        self, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes, rid: str
    ) -> Response:
        project_id = path[len(_PREFIX) : -len(_SUFFIX)]
        if "/" in project_id:
            return css_error("APIGW.0101", _NOT_PUBLISHED, rid)
        if method != "GET" and method != "HEAD":
            return css_error(
                "CSS.0001", "this API only supports GET and HEAD", rid, _ALLOW_DOWNLOAD, status=405
            )
        if not PROJECT_ID_RE.fullmatch(project_id):  # fullmatch: "$" would accept a trailing newline
            return css_error(
                "CSS.0001", "project_id must be 32 lower-case hexadecimal characters", rid
            )
        if body == _TOO_LARGE:
            return css_error("CSS.0001", f"the request body is larger than {_MAX_BODY} bytes", rid)
        service = self.service
        view = service.view()
        directory = view.directory
        try:
            now = service.now()
            principal = directory.authenticate(method, path, query_string, headers, body, now)
            directory.authorize_project(principal, project_id, headers.get("x-project-id"))
            fmt, password = choose_format(query_string, headers.get("accept"))
            bundle = view.bundle(project_id)
            if bundle is None:
                raise ResourceNotFound("the project has no certificate authority yet")
            rep = self._representations.get(view, bundle, fmt, password, now)
        except AuthenticationFailed as exc:
            return css_error("APIGW.0301", str(exc), rid)
        except NotAcceptable as exc:
            return css_error("CSS.0001", str(exc), rid, status=406)
        except (InvalidRequest, AccessDenied, ResourceNotFound) as exc:
            for kind, code in _ERROR_CODES:
                if isinstance(exc, kind):
                    return css_error(code, str(exc), rid)
            raise
        if not_modified(rep, headers):
            return 304, [*rep.not_modified_headers, ("x-request-id", rid)], b""
        return 200, [*rep.headers, ("x-request-id", rid)], rep.body


def create_app(settings: Settings | None = None) -> App:
    """Factory for granian (``--factory``) and for tests: settings come from the environment."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return App(Service(settings))
