"""Per-user roles: what a user may do beyond downloading in its projects.

A grant (``user grant --project``) says *where* a user may act; a role says *what else* it may
do there. ``certificate-issuer`` may sign, list and revoke certificates over the issuance API;
``administrator`` may read the audit trail in the console and do admin-only things. The
bootstrap user ``csscert-admin`` holds both. Roles travel with the :class:`~csscert.model.User`
of the read model, so a request checks them without a query.
"""

from __future__ import annotations

from csscert.errors import InvalidRequest

__all__ = ["ADMINISTRATOR", "CERTIFICATE_ISSUER", "ROLES", "validate_role"]

CERTIFICATE_ISSUER = "certificate-issuer"
ADMINISTRATOR = "administrator"
ROLES = (CERTIFICATE_ISSUER, ADMINISTRATOR)


def validate_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`; else an error that lists them."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role
