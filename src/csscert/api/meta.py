"""Routes about the service itself: the root (also Keystone's version discovery) and OpenAPI."""

from __future__ import annotations

from importlib import resources

from csscert.api.keystone import base_url, version_choices
from csscert.api.request import Request
from csscert.api.wire import Response, json_response
from csscert.service import Service

__all__ = ["openapi", "root"]

_openapi: bytes | None = None  # a packaged file: lives as long as the process


async def root(service: Service, request: Request) -> Response:
    """``GET /``: alive, and Keystone's version list, so ``auth_url=<base URL>`` discovers /v3."""
    versions = version_choices(base_url(service, request))
    return json_response(200, {"status": "ok", "service": "csscert", **versions}, request.request_id)


async def openapi(service: Service, request: Request) -> Response:
    global _openapi
    if _openapi is None:
        _openapi = resources.files("csscert.api").joinpath("openapi.json").read_bytes()
    return 200, [("content-type", "application/json"), ("x-request-id", request.request_id)], _openapi
