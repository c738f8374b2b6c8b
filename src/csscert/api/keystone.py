"""The Keystone v3 subset the official clients need, in Keystone's own wire format.

``openstacksdk``/``otcextensions`` log in with ``POST /v3/auth/tokens`` and find the CSS
endpoint in the token's catalog; the Huawei SDK looks its project up with
``GET /v3/projects?name=<region>``. Handlers only translate: checks live in the identity layer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qsl

from csscert.api.request import Request
from csscert.api.wire import Response, json_response, keystone_error
from csscert.errors import AccessDenied, AuthenticationFailed, InvalidRequest
from csscert.identity import Directory, IssuedToken, Principal, TokenClaims
from csscert.identity.authenticators import authenticate, authenticate_token, password_login
from csscert.model import Domain, Project, User
from csscert.service import Service

__all__ = ["auth_domains", "auth_projects", "base_url", "projects", "tokens", "version", "version_choices"]

_UPDATED = "2013-03-06T00:00:00Z"
_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
_UNAUTHORIZED = "The request you have made requires authentication."


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _version(base_url: str) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "stable",
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base_url}/v3/"}],
        "media-types": _MEDIA,
    }


def version_choices(base_url: str) -> dict[str, Any]:
    """What Keystone answers at its root: lets keystoneauth discover /v3 from ``auth_url=<base>``."""
    return {"versions": {"values": [_version(base_url)]}}


def _project_body(project: Project, base_url: str) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "description": "",
        "enabled": project.enabled,
        "is_domain": False,
        "parent_id": project.domain_id,
        "links": {"self": f"{base_url}/v3/projects/{project.id}"},
    }


def _catalog(service: Service, project: Project, base_url: str) -> list[dict[str, Any]]:
    region = service.settings.region
    return [
        {
            "id": "css",
            "type": "css",
            "name": "css",
            "endpoints": [
                {
                    "id": f"css-{project.id}",
                    "interface": "public",
                    "region": region,
                    "region_id": region,
                    "url": f"{base_url}/v1.0/{project.id}",
                }
            ],
        },
        {
            "id": "identity",
            "type": "identity",
            "name": "iam",
            "endpoints": [
                {
                    "id": "identity-public",
                    "interface": "public",
                    "region": region,
                    "region_id": region,
                    "url": f"{base_url}/v3",
                }
            ],
        },
    ]


async def _token_body(
    service: Service, directory: Directory, claims: TokenClaims, base_url: str, with_catalog: bool
) -> dict[str, Any]:
    user = await directory.user(claims.user_id)
    domain = await directory.domain(claims.domain_id)
    if user is None or domain is None:  # deleted while the request ran
        raise AuthenticationFailed("The request you have made requires authentication.")
    token: dict[str, Any] = {
        "methods": list(claims.methods),
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": {"id": domain.id, "name": domain.name},
            "password_expires_at": None,
        },
        "audit_ids": [claims.audit_id],
        "issued_at": _iso(claims.issued_at),
        "expires_at": _iso(claims.expires_at),
    }
    project = await directory.project(claims.project_id) if claims.project_id is not None else None
    if project is not None:
        token["project"] = {
            "id": project.id,
            "name": project.name,
            "domain": {"id": domain.id, "name": domain.name},
        }
        token["roles"] = [{"id": "0" * 32, "name": "css_user"}]
        token["is_domain"] = False
        if with_catalog:
            token["catalog"] = _catalog(service, project, base_url)
    elif with_catalog:
        token["catalog"] = []
    return {"token": token}


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


async def _domain_ref(directory: Directory, ref: Any) -> Domain:
    domain_id = _opt_str(_get(ref, "id"), "domain id")
    return await directory.find_domain(domain_id, _opt_str(_get(ref, "name"), "domain name"))


def _opt_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise InvalidRequest(f"{what} must be a non-empty string")
    return value


async def _login(directory: Directory, body: bytes, now: float) -> IssuedToken:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest("the request body is not valid JSON") from exc
    identity = _get(payload, "auth", "identity")
    methods = _get(identity, "methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise InvalidRequest('auth.identity.methods must be a list such as ["password"]')
    user: User
    expires_at: int | None = None
    if "password" in methods:
        spec = _get(identity, "password", "user")
        password = _get(spec, "password")
        if not isinstance(spec, dict) or not isinstance(password, str):
            raise InvalidRequest("auth.identity.password.user needs a name or id and a password")
        try:
            password.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") is valid JSON, not valid text
            raise InvalidRequest("the password is not valid Unicode text") from exc
        user_id = _opt_str(spec.get("id"), "user id")
        user_name = _opt_str(spec.get("name"), "user name")
        domain = None
        if user_id is None:
            if user_name is None:
                raise InvalidRequest("give the user's id, or its name and domain")
            try:
                domain = await _domain_ref(directory, spec.get("domain"))
            except AuthenticationFailed:
                domain = None  # still pay the password check below: no cheap "no such domain"
        # argon2 is slow by design: verify off the event loop so other requests keep flowing.
        user = await password_login(directory, user_id, user_name, domain, password)
    elif "token" in methods:
        token = _get(identity, "token", "id")
        if not isinstance(token, str):
            raise InvalidRequest("auth.identity.token.id must be a token")
        principal = await authenticate_token(directory, token, now)
        user = principal.user
        # As in Keystone, a token got with a token never outlives the one it came from.
        expires_at = principal.claims.expires_at if principal.claims is not None else None
    else:
        raise InvalidRequest("supported methods are 'password' and 'token'")
    scope = _get(payload, "auth", "scope")
    project = None
    if scope is not None:
        if not isinstance(scope, dict) or "project" not in scope:
            raise InvalidRequest("only project scope is supported")
        project_id = _opt_str(_get(scope, "project", "id"), "project id")
        project_name = _opt_str(_get(scope, "project", "name"), "project name")
        if project_id is None and project_name is None:
            raise InvalidRequest("give the project's id, or its name")
        try:
            if project_name is not None and project_id is None:
                domain_ref = _get(scope, "project", "domain")
                if domain_ref is not None and (await _domain_ref(directory, domain_ref)).id != user.domain_id:
                    raise AccessDenied("the project is not in the user's domain")
            project = await directory.scope_project(user, project_id, project_name)
        except (AccessDenied, AuthenticationFailed) as exc:
            # Keystone answers 401 when the requested scope is not the user's (or does not exist).
            message = f"{_UNAUTHORIZED} The user has no access to the requested project."
            raise AuthenticationFailed(message) from exc
    methods_used = ["password"] if "password" in methods else ["token"]
    return directory.mint_token(user, project, methods_used, now, expires_at=expires_at)


def base_url(service: Service, request: Request) -> str:
    """The base URL clients reach us at: ``--public-url``, else the Host they used (when it is a
    plain host[:port]), else the listening address."""
    configured = service.settings.public_url
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host")
    if host and all(c.isalnum() or c in ".-:[]_" for c in host):
        return f"{request.scheme}://{host}"
    return service.settings.public_base_url()


async def version(service: Service, request: Request) -> Response:
    """``GET /v3``: the version document keystoneauth discovers."""
    return json_response(200, {"version": _version(base_url(service, request))}, request.request_id)


async def tokens(service: Service, request: Request) -> Response:
    """``POST|GET|HEAD|DELETE /v3/auth/tokens``: log in, validate, revoke."""
    rid = request.request_id
    await service.current()
    directory = service.directory
    now = service.now()
    base = base_url(service, request)
    with_catalog = "nocatalog" not in dict(parse_qsl(request.query_string, keep_blank_values=True))
    if request.method == "POST":
        issued = await _login(directory, request.body, now)
        body = await _token_body(service, directory, issued.claims, base, with_catalog)
        return json_response(201, body, rid, [("x-subject-token", issued.token)])
    caller_token = request.headers.get("x-auth-token")
    if not caller_token:
        raise AuthenticationFailed(_UNAUTHORIZED + " X-Auth-Token is missing.")
    caller = await authenticate_token(directory, caller_token, now)
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise InvalidRequest("X-Subject-Token is required")
    try:
        subject_principal = await authenticate_token(directory, subject, now)
    except AuthenticationFailed:
        return keystone_error(404, "Could not find token: the token is invalid, expired or revoked.", rid)
    claims = subject_principal.claims
    assert claims is not None
    if subject_principal.user.id != caller.user.id:
        # Keystone's policy for a caller without the admin role: only the token's own user.
        raise AccessDenied(
            "You are not authorized to perform the requested action: the token belongs to another user."
        )
    if request.method == "DELETE":
        await asyncio.to_thread(service.identity.revoke_claims, claims)
        return 204, [("x-request-id", rid)], b""
    body = await _token_body(service, directory, claims, base, with_catalog)
    return json_response(200, body, rid, [("x-subject-token", subject)])


async def _caller(service: Service, request: Request) -> tuple[Directory, Principal]:
    await service.current()
    directory = service.directory
    principal = await authenticate(
        directory,
        request.method,
        request.path,
        request.query_string,
        request.headers,
        request.body,
        service.now(),
    )
    return directory, principal


async def projects(service: Service, request: Request) -> Response:
    """``GET /v3/projects``: the caller's projects, filtered (a project-scoped token sees its own)."""
    directory, principal = await _caller(service, request)
    return await _projects(service, directory, principal, request, listing=True)


async def auth_projects(service: Service, request: Request) -> Response:
    """``GET /v3/auth/projects``: every project the user may scope to, as Keystone answers it."""
    directory, principal = await _caller(service, request)
    return await _projects(service, directory, principal, request, listing=False)


async def auth_domains(service: Service, request: Request) -> Response:
    """``GET /v3/auth/domains``: the caller's domain."""
    _, principal = await _caller(service, request)
    domain = principal.domain
    body = {"domains": [{"id": domain.id, "name": domain.name, "enabled": domain.enabled}]}
    return json_response(200, body, request.request_id)


async def _projects(
    service: Service, directory: Directory, principal: Principal, request: Request, *, listing: bool
) -> Response:
    found = await directory.projects_of(principal.user)
    if listing and principal.project_id is not None:
        found = [p for p in found if p.id == principal.project_id]
    if listing:
        for name, value in parse_qsl(request.query_string, keep_blank_values=True):
            if name == "name":
                found = [p for p in found if p.name == value]
            elif name == "domain_id":
                found = [p for p in found if p.domain_id == value]
            elif name == "enabled":
                found = [p for p in found if str(p.enabled).lower() == value.lower()]
    base = base_url(service, request)
    return json_response(
        200,
        {
            "projects": [_project_body(p, base) for p in found],
            "links": {"self": f"{base}{request.path}", "previous": None, "next": None},
        },
        request.request_id,
    )
