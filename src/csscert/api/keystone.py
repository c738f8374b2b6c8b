"""The Keystone v3 subset the official clients need, in Keystone's own wire format.

``openstacksdk``/``otcextensions`` log in with ``POST /v3/auth/tokens`` and find the CSS
endpoint in the token's catalog; the Huawei SDK looks its project up with
``GET /v3/projects?name=<region>``; the ``openstack`` CLI lists a member's projects with
``GET /v3/users/{user_id}/projects``. Statuses, bodies and headers follow the real Keystone, which
``tests/compat/test_keystone_differential.py`` runs beside csscert; the few deliberate
differences are listed there and in the README. Handlers only translate: checks live in the
identity layer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qsl

from csscert.api.request import Request
from csscert.api.wire import Response, json_response
from csscert.errors import (
    AccessDenied,
    AuthenticationFailed,
    InvalidRequest,
    ResourceNotFound,
    UnsupportedAuthMethod,
)
from csscert.identity import Directory, IssuedToken, Principal, TokenClaims
from csscert.identity.authenticators import authenticate, authenticate_token, password_login
from csscert.model import Domain, Project, User
from csscert.service import Service

__all__ = [
    "auth_catalog",
    "auth_domains",
    "auth_projects",
    "base_url",
    "project",
    "projects",
    "tokens",
    "user_projects",
    "version",
    "version_choices",
]

_UPDATED = "2013-03-06T00:00:00Z"
_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
_UNAUTHORIZED = "The request you have made requires authentication."
_METHODS = ("password", "token")
_FORBIDDEN = "You are not authorized to perform the requested action"
_NO_TOKEN = "Could not find token: the token is invalid, expired or revoked."  # noqa: S105 (a message, not a secret)


def _forbidden(action: str | None = None) -> AccessDenied:
    """Keystone's policy refusal (403), naming the policy rule as Keystone does."""
    return AccessDenied(f"{_FORBIDDEN}: {action}." if action else f"{_FORBIDDEN}.")


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
        "tags": [],
        "options": {},
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
        raise AuthenticationFailed(_UNAUTHORIZED)
    token: dict[str, Any] = {
        "methods": list(claims.methods),
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": {"id": domain.id, "name": domain.name},
            "password_expires_at": None,
        },
        "audit_ids": claims.keystone_audit_ids,
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
    # An unscoped token has no catalog key at all (Keystone omits it; it does not send []).
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
    for method in methods:
        if not isinstance(identity.get(method), dict):
            raise InvalidRequest(f"Expecting to find {method[:64]} in identity: each method needs its object")
    if not set(methods) <= set(_METHODS):
        raise UnsupportedAuthMethod("Attempted to authenticate with an unsupported method.", _METHODS)
    scope = _scope_of(payload)
    parent: TokenClaims | None = None
    user: User | None = None
    if "token" in methods:
        parent_principal = await _token_identity(directory, identity, now)
        parent, user = parent_principal.claims, parent_principal.user
    if "password" in methods:
        by_password = await _password_identity(directory, identity)
        if user is not None and by_password.id != user.id:
            raise AuthenticationFailed(_UNAUTHORIZED)
        user = by_password
    assert user is not None
    project = await _scoped_project(directory, user, scope)
    # As in Keystone, a token got with a token keeps the methods that got its parent.
    used = [*(parent.methods if parent is not None else ()), *methods]
    return directory.mint_token(user, project, dict.fromkeys(used), now, parent=parent)


async def _token_identity(directory: Directory, identity: Any, now: float) -> Principal:
    token = _get(identity, "token", "id")
    if not isinstance(token, str):
        raise InvalidRequest("auth.identity.token.id must be a token")
    try:
        principal = await authenticate_token(directory, token, now)
    except AuthenticationFailed as exc:
        # Keystone answers a login with an unusable token 404 (the token is a resource).
        raise ResourceNotFound(_NO_TOKEN) from exc
    assert principal.claims is not None
    return principal


async def _password_identity(directory: Directory, identity: Any) -> User:
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
        if spec.get("domain") is None:
            raise InvalidRequest("Expecting to find domain in user: a user name needs its domain")
        try:
            domain = await _domain_ref(directory, spec.get("domain"))
        except AuthenticationFailed:
            domain = None  # still pay the password check below: no cheap "no such domain"
    # argon2 is slow by design: verify off the event loop so other requests keep flowing.
    return await password_login(directory, user_id, user_name, domain, password)


def _scope_of(payload: Any) -> dict[str, Any] | None:
    scope = _get(payload, "auth", "scope")
    if scope is None:
        return None
    if not isinstance(scope, dict) or len(scope) != 1 or not scope.keys() <= {"project", "domain", "system"}:
        raise InvalidRequest("auth.scope must name one project, domain or system")
    return scope


async def _scoped_project(directory: Directory, user: User, scope: dict[str, Any] | None) -> Project | None:
    """The project a login asks for, once the caller is known; refusals are Keystone's 401."""
    if scope is None:
        return None
    if "project" not in scope:
        # csscert grants roles on projects only: no user has a role on a domain or the system,
        # and Keystone answers a scope the user has no role on with 401.
        raise AuthenticationFailed(_UNAUTHORIZED)
    project_id = _opt_str(_get(scope, "project", "id"), "project id")
    project_name = _opt_str(_get(scope, "project", "name"), "project name")
    if project_id is None and project_name is None:
        raise InvalidRequest("give the project's id, or its name")
    try:
        if project_name is not None and project_id is None:
            domain_ref = _get(scope, "project", "domain")
            if domain_ref is not None and (await _domain_ref(directory, domain_ref)).id != user.domain_id:
                raise AccessDenied("the project is not in the user's domain")
        return await directory.scope_project(user, project_id, project_name)
    except (AccessDenied, AuthenticationFailed) as exc:
        # Keystone answers 401 when the requested scope is not the user's (or does not exist).
        message = f"{_UNAUTHORIZED} The user has no access to the requested project."
        raise AuthenticationFailed(message) from exc


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
    action = "identity:revoke_token" if request.method == "DELETE" else "identity:validate_token"
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise _forbidden(action)  # Keystone's policy has no subject to match: 403, not 400
    try:
        subject_principal = await authenticate_token(directory, subject, now)
    except AuthenticationFailed as exc:
        raise ResourceNotFound(_NO_TOKEN) from exc
    claims = subject_principal.claims
    assert claims is not None
    if subject_principal.user.id != caller.user.id:
        # Keystone's policy for a caller without the admin role: only the token's own user.
        raise _forbidden(action)
    if request.method == "DELETE":
        # Revokes the token's own audit id; every token got from it carries that id in its
        # chain, so they are refused too.
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


def _path_id(request: Request, index: int) -> str:
    """The id at ``index`` of the path's segments (``/v3/users/{id}/projects`` -> index 2)."""
    return request.path.strip("/").split("/")[index]


def _listing(request: Request, base: str, key: str, items: list[Any]) -> Response:
    body = {key: items, "links": {"self": f"{base}{request.path}", "previous": None, "next": None}}
    return json_response(200, body, request.request_id)


def _filtered(projects: list[Project], query_string: str) -> list[Project]:
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name == "name":
            projects = [p for p in projects if p.name == value]
        elif name == "domain_id":
            projects = [p for p in projects if p.domain_id == value]
        elif name == "enabled":
            projects = [p for p in projects if str(p.enabled).lower() == value.lower()]
    return projects


async def projects(service: Service, request: Request) -> Response:
    """``GET /v3/projects``: the projects the caller's user has a role on, filtered by ``name``,
    ``domain_id`` and ``enabled``.

    Deliberately answered for an ordinary member (Keystone's default policy says 403): Huawei IAM
    answers it, and the Huawei SDK looks its project up with ``?name=``. What a member sees is
    what ``/v3/auth/projects`` already shows it, whatever the token's scope.
    """
    directory, principal = await _caller(service, request)
    found = _filtered(await directory.projects_of(principal.user), request.query_string)
    base = base_url(service, request)
    return _listing(request, base, "projects", [_project_body(p, base) for p in found])


async def project(service: Service, request: Request) -> Response:
    """``GET /v3/projects/{project_id}``: the project the caller's token is scoped to (Keystone's
    policy for a member); an access key's user sees the projects it is granted."""
    directory, principal = await _caller(service, request)
    project_id = _path_id(request, 2)
    found = await directory.project(project_id)
    if principal.method == "token":
        allowed = principal.project_id == project_id
    else:
        allowed = project_id in principal.user.project_ids
    if found is None or not allowed:
        raise _forbidden("identity:get_project")
    return json_response(
        200, {"project": _project_body(found, base_url(service, request))}, request.request_id
    )


async def user_projects(service: Service, request: Request) -> Response:
    """``GET /v3/users/{user_id}/projects``: the caller's own projects (another user's: 403)."""
    directory, principal = await _caller(service, request)
    if _path_id(request, 2) != principal.user.id:
        raise _forbidden("identity:list_user_projects")
    found = _filtered(await directory.projects_of(principal.user), request.query_string)
    base = base_url(service, request)
    return _listing(request, base, "projects", [_project_body(p, base) for p in found])


async def auth_projects(service: Service, request: Request) -> Response:
    """``GET /v3/auth/projects``: every project the user may scope to, as Keystone answers it."""
    directory, principal = await _caller(service, request)
    base = base_url(service, request)
    found = await directory.projects_of(principal.user)
    return _listing(request, base, "projects", [_project_body(p, base) for p in found])


async def auth_domains(service: Service, request: Request) -> Response:
    """``GET /v3/auth/domains``: the domains the user has a role on. csscert grants roles on
    projects only, and Keystone lists a domain only for a role on the domain itself (a role on
    a project in it does not count), so the list is always empty, as Keystone's is for them."""
    await _caller(service, request)
    return _listing(request, base_url(service, request), "domains", [])


async def auth_catalog(service: Service, request: Request) -> Response:
    """``GET /v3/auth/catalog``: the catalog of a project-scoped token (others: 403)."""
    directory, principal = await _caller(service, request)
    project_id = principal.project_id if principal.method == "token" else None
    found = await directory.project(project_id) if project_id is not None else None
    if found is None:
        raise _forbidden()
    base = base_url(service, request)
    body = {"catalog": _catalog(service, found, base), "links": {"self": f"{base}{request.path}"}}
    return json_response(200, body, request.request_id)
