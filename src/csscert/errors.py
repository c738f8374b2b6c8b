"""The one exception tree of csscert. Nothing here is HTTP; the wire shapes live in ``api/wire.py``.

Every exception csscert raises on purpose derives from :class:`CsscertError`, and ``str(error)``
is always safe to show to whoever caused it (it never holds a secret). Each class carries what
the edges need to answer it without a lookup table of their own:

* ``css_code`` and ``status``: the CSS / API Gateway error code and HTTP status of the CSS routes;
* ``keystone_status``: the HTTP status the ``/v3`` routes answer in Keystone's shape;
* ``exit_code``: the CLI's exit status (1 for every csscert error; 2 stays click's, for bad usage).

A class left at status 500 is an internal failure: the API logs its message and answers the
generic internal error, so a setup problem never leaks detail to a caller. A new class picks its
codes here, once; ``api/wire.py`` maps any of them, so a new error can never
silently become a 404 on one route family and a 500 on another.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "BackupRefused",
    "ConfigurationError",
    "Conflict",
    "CsscertError",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "PayloadTooLarge",
    "PolicyViolation",
    "RequestTimeout",
    "ResourceNotFound",
    "RouteNotFound",
    "ServiceUnavailable",
    "Throttled",
    "UnsupportedAuthMethod",
    "caller_text",
]

_SHOWN = 64  # characters of caller-sent text an error message may quote


def caller_text(value: str, limit: int = _SHOWN) -> str:
    """``repr`` of caller-sent text for an error message, cut to ``limit`` characters.

    Error messages quote what the caller sent so that the cause is clear; a caller controls its
    length, so the quote is bounded (and with it every body, log line and cache entry built from
    the message).
    """
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


class CsscertError(Exception):
    """Base of every csscert error; ``str(error)`` is safe to show to the caller who caused it."""

    css_code = "CSS.9999"
    status = 500
    keystone_status = 500
    exit_code = 1


class InvalidRequest(CsscertError):
    """Malformed or refused input: a bad parameter, a name outside the rules (CSS.0001)."""

    css_code = "CSS.0001"
    status = 400
    keystone_status = 400


class PolicyViolation(InvalidRequest):
    """A certificate request outside its project's issuance policy; the message names the DNS
    name, IP address or validity that is not allowed (400 CSS.0001)."""


class AuthenticationFailed(CsscertError):
    """Missing, malformed, expired, revoked or wrong credentials (APIGW.0301).

    ``reason`` is a short, fixed word for metrics and logs (never shown to the caller).
    """

    css_code = "APIGW.0301"
    status = 401
    keystone_status = 401

    def __init__(self, message: str, reason: str = "credentials") -> None:
        super().__init__(message)
        self.reason = reason


class UnsupportedAuthMethod(AuthenticationFailed):
    """A login with an authentication method this service does not offer; ``supported`` names
    the ones it does (Keystone lists them in its 401 body, under ``identity.methods``)."""

    def __init__(self, message: str, supported: tuple[str, ...]) -> None:
        super().__init__(message)
        self.supported = supported


class AccessDenied(CsscertError):
    """Authenticated, but not allowed to touch this project or resource (CSS.0015)."""

    css_code = "CSS.0015"
    status = 403
    keystone_status = 403


class ResourceNotFound(CsscertError):
    """The project, user, key, CA or certificate does not exist (CSS.0016)."""

    css_code = "CSS.0016"
    status = 404
    keystone_status = 404


class RouteNotFound(ResourceNotFound):
    """No route has this path (APIGW.0101, what the cloud's gateway answers)."""

    css_code = "APIGW.0101"


class Conflict(CsscertError):
    """A unique name or key already exists (409 in Keystone's shape, CSS.0001 in the CSS one)."""

    css_code = "CSS.0001"
    status = 400
    keystone_status = 409


class MethodNotAllowed(CsscertError):
    """The route exists but not for this method; ``allow`` lists the ones it has."""

    css_code = "CSS.0001"
    status = 405
    keystone_status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class NotAcceptable(CsscertError):
    """No representation the client's Accept header takes (406)."""

    css_code = "CSS.0001"
    status = 406
    keystone_status = 406


class PayloadTooLarge(CsscertError):
    """The request body passed the size limit (CSS.0001 400 on CSS routes, 413 on Keystone's)."""

    css_code = "CSS.0001"
    status = 400
    keystone_status = 413


class ServiceUnavailable(CsscertError):
    """The database (or another dependency) cannot answer now; try again (503, ``Retry-After``)."""

    css_code = "CSS.9999"
    status = 503
    keystone_status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(CsscertError):
    """The deployment is set up wrongly (settings, master key, schema, data directory); the
    message names the cause and the fix. Never caused by an API caller."""


class RequestTimeout(CsscertError):
    """The request (its body) did not arrive within the server's deadline (408; the connection
    is closed)."""

    css_code = "CSS.0001"
    status = 408
    keystone_status = 408


class Throttled(CsscertError):
    """Too many requests for one credential, user or address; try again after ``retry_after``
    seconds (429 APIGW.0308, what the cloud's gateway answers; 429 in Keystone's shape)."""

    css_code = "APIGW.0308"
    status = 429
    keystone_status = 429

    def __init__(self, message: str, retry_after: int = 1, limit: str = "credential") -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.limit = limit  # which limit refused: for metrics and logs


class BackupRefused(CsscertError):
    """A backup file that cannot be restored: damaged, truncated, altered, of a newer format or
    schema, sealed under another master key, or a target that is not empty (CLI only)."""
