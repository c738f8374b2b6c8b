"""Domain errors. The API layer maps each to its wire status, code and body; nothing here is HTTP."""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "CsscertError",
    "InvalidRequest",
    "NotAcceptable",
    "ResourceNotFound",
]


class CsscertError(Exception):
    """Base of the errors a caller caused; ``str(error)`` is safe to show to that caller."""


class InvalidRequest(CsscertError):
    """Malformed input (CSS.0001)."""


class AuthenticationFailed(CsscertError):
    """Missing, malformed, expired, revoked or wrong credentials (APIGW.0301)."""


class AccessDenied(CsscertError):
    """Authenticated, but not allowed to touch this project (CSS.0015)."""


class ResourceNotFound(CsscertError):
    """The project (or other resource) does not exist (CSS.0016)."""


class NotAcceptable(CsscertError):
    """No representation the client accepts (406)."""
