"""Routes for operators: ``/healthz`` (alive), ``/readyz`` (able to serve) and ``/metrics``.

``/metrics`` is not for everyone: by default only callers on the loopback interface may read it
(``CSSCERT_METRICS=loopback``); ``on`` opens it to every address, ``off`` removes it, and
``CSSCERT_METRICS_TOKEN`` additionally admits ``Authorization: Bearer <token>`` from anywhere.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Iterable
from typing import Any

from csscert.api.request import Request
from csscert.api.wire import Response, json_response
from csscert.errors import AccessDenied, RouteNotFound
from csscert.service import Service

__all__ = ["healthz", "live_families", "metrics", "readyz"]

_READY_TIMEOUT = 5.0  # seconds for the store's answer


async def healthz(service: Service, request: Request) -> Response:
    """Alive: the process answers requests (nothing else is checked)."""
    return json_response(200, {"status": "ok", "service": "csscert"}, request.request_id)


async def readyz(service: Service, request: Request) -> Response:
    """Ready: the store answers, a CA is present, and this worker's view is the store's revision."""
    try:
        checks = await asyncio.wait_for(asyncio.to_thread(service.readiness), _READY_TIMEOUT)
    except TimeoutError:
        checks = {"store": False, "ca": False, "changes": False}
    ready = all(checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return json_response(200 if ready else 503, body, request.request_id)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _allowed(service: Service, request: Request) -> bool:
    settings = service.settings
    token = settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
    return settings.metrics == "on" or _loopback(request.client)


async def metrics(service: Service, request: Request) -> Response:
    """The whole server's metrics in the Prometheus text format."""
    observer: Any = service.observer
    if service.settings.metrics == "off" or observer is None or observer.metrics is None:
        raise RouteNotFound("The API does not exist or has not been published.")
    if not _allowed(service, request):
        raise AccessDenied(
            "metrics are readable from the loopback interface only (or with the metrics token)"
        )
    observer.flush()  # this worker's latest counts; other workers' are at most a second old
    # Off the loop: it reads every worker's metrics file and the CAs from the store.
    body, content_type = await asyncio.to_thread(observer.metrics.exposition)
    return 200, [("content-type", content_type), ("x-request-id", request.request_id)], body


def live_families(service: Service) -> Iterable[Any]:
    """Metrics computed at scrape time: seconds until each trusted CA expires."""
    from prometheus_client.core import GaugeMetricFamily

    expiry = GaugeMetricFamily(
        "csscert_ca_expiry_seconds",
        "Seconds until each CA in a trust bundle expires (negative once expired).",
        labels=["scope", "fingerprint", "state"],
    )
    now = time.time()
    for ca in service.trusted_authorities():
        expiry.add_metric(
            [ca.scope, ca.fingerprint_sha256[:16], ca.state.value], ca.not_after.timestamp() - now
        )
    yield expiry
