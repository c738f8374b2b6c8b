"""The one place a Keystone v3 password login body is built."""

from __future__ import annotations

from typing import Any


def password_login(
    password: str,
    *,
    user: str | None = None,
    domain: str | None = None,
    user_id: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
    project_domain: str | None = None,
) -> dict[str, Any]:
    """``POST /v3/auth/tokens`` body for the password method.

    The user is named (``user`` in ``domain``) or given by ``user_id``; the token is scoped to
    ``project_id``, to ``project_name`` in ``project_domain`` (default: the user's domain), or,
    with neither, unscoped.
    """
    who: dict[str, Any] = (
        {"id": user_id} if user_id is not None else {"name": user, "domain": {"name": domain}}
    )
    auth: dict[str, Any] = {
        "identity": {"methods": ["password"], "password": {"user": {**who, "password": password}}}
    }
    if project_id is not None:
        auth["scope"] = {"project": {"id": project_id}}
    elif project_name is not None:
        auth["scope"] = {"project": {"name": project_name, "domain": {"name": project_domain or domain}}}
    return {"auth": auth}


def bootstrap_login(bootstrap: dict[str, Any], *, scoped: bool = True) -> dict[str, Any]:
    """The login body of a server's bootstrap user (from ``bootstrap-credentials.json``)."""
    return password_login(
        bootstrap["password"],
        user=bootstrap["user_name"],
        domain=bootstrap["domain_name"],
        project_id=bootstrap["project_id"] if scoped else None,
    )
