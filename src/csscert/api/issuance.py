"""The issuance API, a csscert extension beside the CSS path, in the CSS error shape:

* ``POST /v1.0/{project_id}/csscert/certificates``: sign a PEM CSR under a profile → 201;
* ``GET  /v1.0/{project_id}/csscert/certificates[?status=&name=&limit=&marker=]``: one page;
* ``GET  /v1.0/{project_id}/csscert/certificates/{serial}``;
* ``POST /v1.0/{project_id}/csscert/certificates/{serial}/revoke`` with an RFC 5280 reason.

Callers authenticate as for the download (X-Auth-Token or AK/SK over the body too), must have the
project, and need the role ``certificate-issuer`` (403 otherwise). Handlers only translate: the
CSR, profile and policy checks and the signing are the authority's; signing and revoking run off
the event loop, at most ``signing_workers`` at a time per worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from typing import Any
from urllib.parse import parse_qsl

from csscert.api.request import Request
from csscert.api.wire import Response, json_response
from csscert.ca.crl import parse_reason
from csscert.errors import AccessDenied, InvalidRequest, caller_text
from csscert.identity.authenticators import authenticate
from csscert.identity.directory import Principal
from csscert.identity.roles import CERTIFICATE_ISSUER
from csscert.model import PROJECT_ID_RE, IssuedCertificate
from csscert.service import Service

__all__ = ["certificate", "certificates", "is_certificate_path", "is_certificates_path", "is_revoke_path"]

_PREFIX = "/v1.0/"
_COLLECTION = "csscert/certificates"
_PROFILES = ("node", "client", "admin")
_STATUSES = ("valid", "expired", "superseded", "revoked")
_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000
_NO_STORE = ("cache-control", "no-store")


def _parts(path: str) -> list[str]:
    """``/v1.0/<project>/csscert/certificates[/<serial>[/revoke]]`` split after ``/v1.0/``."""
    return path[len(_PREFIX) :].split("/") if path.startswith(_PREFIX) else []


def is_certificates_path(path: str) -> bool:
    parts = _parts(path)
    return len(parts) == 3 and parts[1:] == ["csscert", "certificates"]


def is_certificate_path(path: str) -> bool:
    parts = _parts(path)
    return len(parts) == 4 and parts[1:3] == ["csscert", "certificates"] and parts[3] != ""


def is_revoke_path(path: str) -> bool:
    parts = _parts(path)
    return (
        len(parts) == 5
        and parts[1:3] == ["csscert", "certificates"]
        and parts[3] != ""
        and parts[4] == "revoke"
    )


async def _issuer(service: Service, request: Request) -> str:
    """Authenticate, authorise the project and check the role; the project id."""
    project_id = _parts(request.path)[0]
    if not PROJECT_ID_RE.fullmatch(project_id):
        raise InvalidRequest("project_id must be 32 lower-case hexadecimal characters")
    await service.current()
    directory = service.directory
    now = service.now()
    headers = request.headers
    principal: Principal = await authenticate(
        directory, request.method, request.path, request.query_string, headers, request.body, now
    )
    request.caller_user = principal.user.id
    request.caller_credential = principal.credential
    service.limits.check_credential(principal.credential, now)
    await directory.authorize_project(principal, project_id, headers.get("x-project-id"))
    request.project_id = project_id
    if CERTIFICATE_ISSUER not in principal.user.roles:
        raise AccessDenied(
            f"user {principal.user.name} may download but not issue: the issuance API needs the role "
            f"{CERTIFICATE_ISSUER} (an administrator runs 'csscert user grant {principal.user.name} "
            f"--role {CERTIFICATE_ISSUER}')"
        )
    return project_id


def _body(request: Request, allowed: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The request's JSON object, with only ``allowed`` keys of the given types."""
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body must be a JSON object (Content-Type: application/json)") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object (Content-Type: application/json)")
    for key, value in payload.items():
        wanted = allowed.get(key)
        if wanted is None:
            raise InvalidRequest(f"unknown field {caller_text(str(key))}; fields: {', '.join(allowed)}")
        if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is int):
            raise InvalidRequest(f"field {key} has the wrong type")
    return payload


def _status(cert: IssuedCertificate, now: dt.datetime) -> str:
    if cert.status == "valid" and cert.not_after <= now:
        return "expired"
    return cert.status


def _record(cert: IssuedCertificate, now: dt.datetime, *, pem: bool) -> dict[str, Any]:
    sans = [value for value in cert.sans.split(",") if value]
    out: dict[str, Any] = {
        "serial": cert.serial,
        "name": cert.name,
        "project_id": cert.project_id,
        "subject": cert.subject,
        "profile": cert.profile,
        "sans": sans,
        "key_type": cert.key_type or None,
        "fingerprint_sha256": cert.fingerprint_sha256,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "status": _status(cert, now),
        "origin": cert.origin,
        "revoked_at": cert.revoked_at.isoformat() if cert.revoked_at else None,
        "revocation_reason": cert.revocation_reason,
    }
    if pem:
        out["certificate"] = cert.cert_pem.decode("ascii") if cert.cert_pem else None
    return out


def _location(project_id: str, serial: str) -> tuple[str, str]:
    return ("location", f"{_PREFIX}{project_id}/{_COLLECTION}/{serial}")


async def certificates(service: Service, request: Request) -> Response:
    """``POST`` signs a CSR; ``GET`` lists a page."""
    project_id = await _issuer(service, request)
    if request.method == "POST":
        return await _sign(service, request, project_id)
    return await _list(service, request, project_id)


async def _sign(service: Service, request: Request, project_id: str) -> Response:
    payload = _body(request, {"csr": str, "profile": str, "name": str, "validity_days": int})
    csr = payload.get("csr")
    if not csr:
        raise InvalidRequest('give the CSR in PEM as "csr" (e.g. from openssl req -new)')
    profile = payload.get("profile", "node")
    if profile not in _PROFILES:
        raise InvalidRequest(f"unknown profile {caller_text(profile)}; use node, client or admin")
    days = payload.get("validity_days")
    if days is not None and not 1 <= days <= 36500:
        raise InvalidRequest("validity_days must be between 1 and 36500")
    sign = functools.partial(
        service.authority.sign_request,
        project_id,
        csr.encode("utf-8", "replace"),
        profile=profile,
        name=payload.get("name"),
        validity_days=days,
        origin="api",
    )
    async with service.signers:
        # A thread copies the context: the audit record names this request's caller.
        node = await asyncio.to_thread(sign)
    now = dt.datetime.now(dt.UTC)
    out = _record(node.record, now, pem=True)
    out["certificate"] = node.cert_pem.decode("ascii")
    out["chain"] = node.chain_pem.decode("ascii")
    out["ca_bundle"] = node.ca_bundle_pem.decode("ascii")
    if node.requested_days is not None:
        out["requested_days"] = node.requested_days
    return json_response(201, out, request.request_id, [_location(project_id, node.record.serial), _NO_STORE])


def _query(request: Request) -> dict[str, str]:
    known = ("status", "name", "limit", "marker")
    found: dict[str, str] = {}
    try:
        pairs = parse_qsl(request.query_string, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise InvalidRequest("the query string cannot be parsed") from None
    for key, value in pairs:
        if key not in known:
            raise InvalidRequest(f"unknown query parameter {caller_text(key)}; use {', '.join(known)}")
        if key in found:
            raise InvalidRequest(f"query parameter {key} given twice")
        found[key] = value
    return found


async def _list(service: Service, request: Request, project_id: str) -> Response:
    query = _query(request)
    status = query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise InvalidRequest(f"unknown status {caller_text(status)}; use {', '.join(_STATUSES)}")
    raw_limit = query.get("limit", str(_DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {_MAX_LIMIT}")
    limit = int(raw_limit)
    page = functools.partial(
        service.authority.certificates_page,
        project_id,
        status=status,
        name=query.get("name") or None,
        after=query.get("marker") or None,
        limit=limit + 1,
    )
    found: list[IssuedCertificate] = await service.store.read(page)
    now = dt.datetime.now(dt.UTC)
    more = len(found) > limit
    body = {
        "certificates": [_record(cert, now, pem=False) for cert in found[:limit]],
        "next_marker": found[limit - 1].serial if more else None,
    }
    return json_response(200, body, request.request_id, [_NO_STORE])


async def certificate(service: Service, request: Request) -> Response:
    """``GET .../certificates/{serial}``."""
    project_id = await _issuer(service, request)
    serial = _parts(request.path)[3]
    found = await service.store.read(service.authority.certificate, serial, project_id)
    now = dt.datetime.now(dt.UTC)
    return json_response(200, _record(found, now, pem=True), request.request_id, [_NO_STORE])


async def revoke(service: Service, request: Request) -> Response:
    """``POST .../certificates/{serial}/revoke`` with ``{"reason": "keyCompromise"}``."""
    project_id = await _issuer(service, request)
    serial = _parts(request.path)[3]
    payload = _body(request, {"reason": str})
    if "reason" not in payload:
        raise InvalidRequest('give an RFC 5280 reason, e.g. {"reason": "keyCompromise"}')
    reason = parse_reason(payload["reason"])
    work = functools.partial(service.authority.revoke, serial, reason, project_id=project_id)
    async with service.signers:
        done = await asyncio.to_thread(work)
    now = dt.datetime.now(dt.UTC)
    return json_response(200, _record(done, now, pem=True), request.request_id, [_NO_STORE])
