"""The HTTP application: a framework-free RSGI callable (served by granian) plus an ASGI adapter.

Request pipeline for every route: server -> :class:`Request` (with its id) -> route table
(:mod:`.routes`) -> method and body checks -> handler -> response, every error answered in the
route's shape (:mod:`.wire`). Handlers translate between the wire and the ca/identity layers;
they hold no certificate or credential logic of their own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from csscert.api.request import MAX_BODY, Request
from csscert.api.routes import resolve
from csscert.api.wire import KEYSTONE_SHAPE, Response, keystone_request_id, new_request_id
from csscert.errors import CsscertError, MethodNotAllowed, PayloadTooLarge
from csscert.service import Service
from csscert.settings import Settings

__all__ = ["App", "create_app"]

log = logging.getLogger("csscert.api")


def _settle_heap() -> None:
    """Take what start-up built (~65k objects: imports, settings, store) out of the collector's
    way, so that a full collection while serving walks only what requests made (about 50 ms
    less of a pause, on the event loop)."""
    gc.collect()
    gc.freeze()


class App:
    """One per worker process. ``__rsgi__`` is the hot path; ``__call__`` speaks ASGI."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # -- servers ------------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.service.start_watching(loop)
        _settle_heap()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.service.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        headers = scope.headers
        method = scope.method
        request = Request(
            method, scope.path, scope.query_string, headers, b"", scope.scheme, new_request_id()
        )
        # A body is read whatever the method: an AK/SK signature covers it, even on a GET.
        if (
            method not in ("GET", "HEAD")
            or headers.get("content-length", "0") != "0"
            or ("transfer-encoding" in headers)
        ):
            await self._read_body(request, protocol)
        status, out_headers, out_body = await self.handle(request)
        if method == "HEAD" or not out_body:
            if method == "HEAD" and out_body and all(name != "content-length" for name, _ in out_headers):
                # On GET the server adds the length of the body; HEAD must announce the same one.
                out_headers = [*out_headers, ("content-length", str(len(out_body)))]
            protocol.response_empty(status, out_headers)
        else:
            protocol.response_bytes(status, out_headers, out_body)

    @staticmethod
    async def _read_body(request: Request, protocol: Any) -> None:
        """Fill ``request.body``, or flag it too large as soon as it passes the limit (a chunked
        body has no Content-Length to check up front, so it is counted while it streams)."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            request.body_too_large = True
            return
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            size += len(chunk)
            if size > MAX_BODY:
                request.body_too_large = True
                return
            chunks.append(chunk)
        request.body = b"".join(chunks)

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.service.start_watching(asyncio.get_running_loop())
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
        query = scope.get("query_string", b"").decode("latin-1")
        request = Request(
            scope["method"], scope["path"], query, headers, b"", scope.get("scheme", "http"), new_request_id()
        )
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                request.body_too_large = True
                body = b""
                break
        request.body = body
        status, out_headers, out_body = await self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else out_body})

    # -- dispatch -----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Route, check method and body size, run the handler; answer every error in the
        route's shape (an unexpected one as a bare 500, its detail only in the log)."""
        route = resolve(request.path)
        keystone = route.shape is KEYSTONE_SHAPE
        if keystone:
            request.request_id = keystone_request_id(request.request_id)
        response: Response
        try:
            if request.method not in route.methods:
                raise MethodNotAllowed(
                    f"this API only supports {route.allow.replace(', ', ' and ')}", route.allow
                )
            if request.body_too_large:
                raise PayloadTooLarge(f"the request body is larger than {MAX_BODY} bytes")
            response = await route.handler(self.service, request)
        except CsscertError as exc:
            if exc.status != 500:
                response = route.shape.of(exc, request.request_id)
            else:
                # A 500-class csscert error (a broken setup, a corrupt secret) is ours, not the
                # caller's: its message goes to the log like any other internal failure.
                log.exception(
                    "request %s failed: %s %r", request.request_id, request.method, request.path[:200]
                )
                response = route.shape.internal(request.request_id)
        except Exception:
            log.exception("request %s failed: %s %r", request.request_id, request.method, request.path[:200])
            response = route.shape.internal(request.request_id)
        if keystone:
            # Keystone's request id (req-<uuid>, also in X-Request-Id) and its Vary on every
            # answer: a shared cache must not hand one token's answer to another.
            status, headers, body = response
            extra = [("x-openstack-request-id", request.request_id), ("vary", "X-Auth-Token")]
            response = status, [*headers, *extra], body
        return response


def create_app(settings: Settings | None = None) -> App:
    """Factory for granian (``--factory``) and for tests: settings come from the environment."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return App(Service(settings))
