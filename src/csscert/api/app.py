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
from time import perf_counter
from typing import Any

from csscert.api.observe import FLUSH_SECONDS, AccessLog, Metrics, Proxies, client_address, request_id_of
from csscert.api.request import MAX_BODY, Request
from csscert.api.routes import resolve
from csscert.api.status import live_families
from csscert.api.wire import KEYSTONE_SHAPE, Response, keystone_request_id, new_request_id
from csscert.audit import ACTOR, api_actor
from csscert.errors import (
    AuthenticationFailed,
    CsscertError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    Throttled,
)
from csscert.logs import configure as configure_logging
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
        settings = service.settings
        self._body_timeout = settings.body_timeout_seconds
        self._proxies = Proxies(settings.trusted_proxies)
        self.access_log = AccessLog() if settings.access_log == "on" else None
        self.metrics = Metrics(lambda: live_families(service)) if settings.metrics != "off" else None
        self._observing = self.access_log is not None or self.metrics is not None
        service.observer = self  # for the /metrics route
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- servers ------------------------------------------------------------------------

    def _started(self, loop: asyncio.AbstractEventLoop) -> None:
        self.service.start_watching(loop)
        self._loop = loop
        loop.call_later(FLUSH_SECONDS, self._tick)
        _settle_heap()

    def _stopped(self) -> None:
        self.flush()
        if self.metrics is not None:
            self.metrics.worker_exit()
        self.service.close()

    def _tick(self) -> None:
        """Every second on the event loop: write the access log lines, move the metrics."""
        try:
            self.flush()
        except Exception:  # never let a metrics hiccup stop the ticks
            log.exception("flushing the access log or metrics failed")
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_later(FLUSH_SECONDS, self._tick)

    def flush(self) -> None:
        if self.access_log is not None:
            self.access_log.flush()
        if self.metrics is not None:
            self.metrics.flush(
                self.service.store.errors, self.service.cache_sizes(), self.service.feed_state()
            )

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._started(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = None
        self._stopped()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        started = perf_counter()
        headers = scope.headers
        method = scope.method
        request = Request(
            method,
            scope.path,
            scope.query_string,
            headers,
            b"",
            scope.scheme,
            request_id_of(headers.get("x-request-id"), new_request_id),
        )
        request.client = client_address(scope.client)
        if self._proxies:
            request.client = self._proxies.resolve(request.client, headers)
        # A body is read whatever the method: an AK/SK signature covers it, even on a GET.
        if (
            method not in ("GET", "HEAD")
            or headers.get("content-length", "0") != "0"
            or ("transfer-encoding" in headers)
        ):
            try:
                async with asyncio.timeout(self._body_timeout):
                    await self._read_body(request, protocol)
            except TimeoutError:
                request.body = b""
                request.body_timed_out = True
        status, out_headers, out_body = await self.handle(request)
        if method == "HEAD" or not out_body:
            if method == "HEAD" and out_body and all(name != "content-length" for name, _ in out_headers):
                # On GET the server adds the length of the body; HEAD must announce the same one.
                out_headers = [*out_headers, ("content-length", str(len(out_body)))]
            protocol.response_empty(status, out_headers)
            sent = 0
        else:
            protocol.response_bytes(status, out_headers, out_body)
            sent = len(out_body)
        if self._observing:
            self.observe(request, status, sent, started)

    def observe(self, request: Request, status: int, sent: int, started: float) -> None:
        """After the response: one access log line, the request's metrics."""
        elapsed = perf_counter() - started
        access_log = self.access_log
        if access_log is not None:
            access_log.record(request, status, sent, int(elapsed * 1_000_000))
        metrics = self.metrics
        if metrics is not None:
            metrics.observe(request.route, status, elapsed)

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
                    self._started(asyncio.get_running_loop())
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._loop = None
                    self._stopped()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        started = perf_counter()
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query = scope.get("query_string", b"").decode("latin-1")
        request = Request(
            scope["method"],
            scope["path"],
            query,
            headers,
            b"",
            scope.get("scheme", "http"),
            request_id_of(headers.get("x-request-id"), new_request_id),
        )
        peer = scope.get("client")
        request.client = str(peer[0]) if peer else ""
        if self._proxies:
            request.client = self._proxies.resolve(request.client, headers)
        try:
            async with asyncio.timeout(self._body_timeout):
                await self._receive_body(request, receive)
        except TimeoutError:
            request.body = b""
            request.body_timed_out = True
        status, out_headers, out_body = await self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
            }
        )
        sent = b"" if scope["method"] == "HEAD" else out_body
        await send({"type": "http.response.body", "body": sent})
        self.observe(request, status, len(sent), started)

    @staticmethod
    async def _receive_body(request: Request, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
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

    # -- dispatch -----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Route, check method and body size, run the handler; answer every error in the
        route's shape (an unexpected one as a bare 500, its detail only in the log)."""
        route = resolve(request.path)
        request.route = route.name
        keystone = route.shape is KEYSTONE_SHAPE
        if keystone:
            request.request_id = keystone_request_id(request.request_id)
        if request.method != "GET" and request.method != "HEAD":
            # Changes this request makes are recorded as its caller's (known after authentication).
            ACTOR.set(api_actor(lambda: request.caller_user, request.client, request.request_id))
        response: Response
        try:
            if request.method not in route.methods:
                raise MethodNotAllowed(
                    f"this API only supports {route.allow.replace(', ', ' and ')}", route.allow
                )
            if request.body_too_large:
                raise PayloadTooLarge(f"the request body is larger than {MAX_BODY} bytes")
            if request.body_timed_out:
                raise RequestTimeout(f"the request body did not arrive within {self._body_timeout:g} seconds")
            response = await route.handler(self.service, request)
        except CsscertError as exc:
            if exc.status != 500:
                if self.metrics is not None:
                    if isinstance(exc, AuthenticationFailed):
                        self.metrics.count(self.metrics.auth_failures, exc.reason)
                    elif isinstance(exc, Throttled):
                        self.metrics.count(self.metrics.throttled, exc.limit)
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
    configure_logging(settings.log_level)
    return App(Service(settings))
