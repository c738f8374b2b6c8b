"""The ACME routes, ``/acme/{project_id}/...``: HTTP in and out, nothing else.

Each handler names its endpoint; :func:`_post` does what every ACME POST shares (content type,
project, JWS authentication through :class:`~csscert.acme.server.AcmeServer`, problem documents),
and every answer carries a fresh ``Replay-Nonce`` (errors too, so a client retries a ``badNonce``
at once), ``Link: <directory>;rel="index"`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from csscert.acme.problems import PREFIX, AcmeProblem, problem_of
from csscert.acme.server import AcmeResponse, AcmeServer, Context
from csscert.api.request import Request
from csscert.api.wire import ErrorShape, Headers, Response
from csscert.errors import CsscertError, Throttled
from csscert.service import Service

__all__ = ["ACME_SHAPE", "acme_path"]

PROBLEM = "application/problem+json"
_ENDPOINTS = {
    "directory": 0,
    "new-nonce": 0,
    "new-account": 0,
    "new-order": 0,
    "revoke-cert": 0,
    "key-change": 0,
    "acct": 1,
    "order": 1,
    "authz": 1,
    "chall": 1,
    "cert": 1,
}


def acme_path(endpoint: str, tail: str = "") -> Callable[[str], bool]:
    """A matcher for ``/acme/{project}/{endpoint}[/{id}]{tail}``."""
    with_id = _ENDPOINTS[endpoint] == 1

    def matches(path: str) -> bool:
        if not path.startswith("/acme/"):
            return False
        parts = path.split("/")
        want = 5 if with_id else 4
        if tail:
            want += 1
        if len(parts) != want or parts[3] != endpoint or not parts[2]:
            return False
        if with_id and not parts[4]:
            return False
        return not tail or parts[-1] == tail

    return matches


def _problem(problem: AcmeProblem, request_id: str) -> Response:
    body: dict[str, object] = {
        "type": PREFIX + problem.kind,
        "detail": str(problem),
        "status": problem.status,
    }
    if problem.subproblems:
        body["subproblems"] = problem.subproblems
    headers: Headers = [
        ("content-type", PROBLEM),
        ("x-request-id", request_id),
        ("cache-control", "no-store"),
    ]
    if problem.retry_after is not None:
        headers.append(("retry-after", str(problem.retry_after)))
    if problem.location is not None:
        headers.append(("location", problem.location))
    return problem.status, headers, json.dumps(body, separators=(",", ":")).encode()


def _shape_of(error: CsscertError, request_id: str) -> Response:
    return _problem(problem_of(error), request_id)


def _shape_internal(request_id: str) -> Response:
    return _problem(
        AcmeProblem("serverInternal", "the server failed to process the request", 500), request_id
    )


# For what dispatch answers before a handler runs (405, 413, 408) and internal failures.
ACME_SHAPE = ErrorShape("acme", _shape_of, _shape_internal)


def _origin(service: Service, request: Request) -> str:
    if service.settings.public_url:
        return service.settings.public_url.rstrip("/")
    host = request.headers.get("host", "")
    if not host or len(host) > 255 or any(c in host for c in "/\\@ "):
        raise AcmeProblem("malformed", "the request has no usable Host header")
    return f"{request.scheme}://{host}"


def _parts(request: Request) -> list[str]:
    return request.path.split("/")


async def _finish(server: AcmeServer, request: Request, base: str, answer: Response) -> Response:
    status, headers, body = answer
    try:
        nonce = await server.new_nonce()
    except CsscertError:
        nonce = ""  # the store is down: the answer (likely a 503 problem) goes out without one
    extra: Headers = [("link", f'<{base}/directory>;rel="index"'), ("cache-control", "no-store")]
    if nonce:
        extra.append(("replay-nonce", nonce))
    return status, [*[(k, v) for k, v in headers if k != "cache-control"], *extra], body


def _out(response: AcmeResponse, request_id: str) -> Response:
    headers: Headers = [
        ("content-type", response.content_type),
        ("x-request-id", request_id),
        *response.headers,
    ]
    return response.status, headers, response.body


async def _project(service: Service, request: Request) -> tuple[AcmeServer, str, str]:
    project_id = _parts(request)[2]
    request.project_id = project_id[:32]
    # Every ACME request costs a store write or more (a nonce at least) before anyone is known:
    # one token bucket per client address, at the per-credential rate (429 rateLimited).
    service.limits.check_credential(f"acme {request.client}", service.now())
    server = service.acme
    base = f"{_origin(service, request)}/acme/{project_id}"
    if not await server.project_exists(project_id):
        raise AcmeProblem(
            "malformed", "no such project: the ACME directory is /acme/{project_id}/directory", 404
        )
    return server, project_id, base


Action = Callable[[AcmeServer, Context, str, list[str]], Awaitable[AcmeResponse]]


async def _post(service: Service, request: Request, action: Action, *, jwk_allowed: bool = False) -> Response:
    server = service.acme
    base = ""
    try:
        server, project_id, base = await _project(service, request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/jose+json":
            raise AcmeProblem("malformed", "ACME requests are application/jose+json", 415)
        url = f"{_origin(service, request)}{request.path}"
        ctx = await server.authenticate(request.body, url, base, jwk_allowed=jwk_allowed)
        if ctx.account is not None:
            request.caller_user = f"acme-account:{ctx.account.id}"
        answer = _out(await action(server, ctx, project_id, _parts(request)), request.request_id)
    except CsscertError as exc:
        if exc.status == 500 and not isinstance(exc, AcmeProblem):
            raise  # logged by dispatch, answered as serverInternal without detail
        answer = _problem(problem_of(exc), request.request_id)
    return await _finish(server, request, base, answer)


async def directory(service: Service, request: Request) -> Response:
    try:
        server, _, base = await _project(service, request)
    except (AcmeProblem, Throttled) as exc:
        return _problem(problem_of(exc), request.request_id)
    body = json.dumps(server.directory(base), separators=(",", ":")).encode()
    return 200, [("content-type", "application/json"), ("x-request-id", request.request_id)], body


async def new_nonce(service: Service, request: Request) -> Response:
    try:
        server, _, base = await _project(service, request)
    except (AcmeProblem, Throttled) as exc:
        return _problem(problem_of(exc), request.request_id)
    status = 200 if request.method == "HEAD" else 204
    return await _finish(server, request, base, (status, [("x-request-id", request.request_id)], b""))


async def new_account(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, p, _: s.new_account(c, p), jwk_allowed=True)


async def account(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.account_update(c, parts[4]))


async def account_orders(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.account_orders(c, parts[4]))


async def new_order(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, p, _: s.new_order(c, p))


async def order(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.order(c, parts[4]))


async def finalize(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.finalize(c, parts[4]))


async def authorization(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.authorization(c, parts[4]))


async def challenge(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.challenge(c, parts[4]))


async def certificate(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, parts: s.certificate(c, parts[4]))


async def revoke_cert(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, p, _: s.revoke(c, p), jwk_allowed=True)


async def key_change(service: Service, request: Request) -> Response:
    return await _post(service, request, lambda s, c, _, __: s.key_change(c))
