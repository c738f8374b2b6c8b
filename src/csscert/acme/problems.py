"""RFC 8555 §6.7 problem documents as csscert errors.

An :class:`AcmeProblem` carries its ACME error type (``urn:ietf:params:acme:error:<type>``) and
HTTP status; every other :class:`~csscert.errors.CsscertError` maps onto the nearest ACME type in
:func:`problem_of`, so any refusal a layer below raises reaches an ACME client in its own format.
"""

from __future__ import annotations

from csscert.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    CsscertError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    ResourceNotFound,
    ServiceUnavailable,
    Throttled,
)

__all__ = ["PREFIX", "AcmeProblem", "problem_of"]

PREFIX = "urn:ietf:params:acme:error:"


class AcmeProblem(InvalidRequest):
    """A refusal in ACME's terms: ``kind`` is the error type without its URN prefix."""

    def __init__(
        self,
        kind: str,
        detail: str,
        status: int = 400,
        *,
        retry_after: int | None = None,
        location: str | None = None,
        subproblems: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.location = location
        self.subproblems = subproblems or []


def problem_of(error: CsscertError) -> AcmeProblem:
    """The ACME problem for any csscert error (an :class:`AcmeProblem` is itself)."""
    if isinstance(error, AcmeProblem):
        return error
    detail = str(error)
    if isinstance(error, Throttled | ServiceUnavailable):
        kind = "rateLimited" if isinstance(error, Throttled) else "serverInternal"
        return AcmeProblem(kind, detail, error.status, retry_after=int(getattr(error, "retry_after", 1) or 1))
    if isinstance(error, AuthenticationFailed | AccessDenied):
        return AcmeProblem("unauthorized", detail, 403)
    if isinstance(error, ResourceNotFound):
        return AcmeProblem("malformed", detail, 404)
    if isinstance(error, Conflict):
        return AcmeProblem("malformed", detail, 409)
    if isinstance(error, MethodNotAllowed):
        return AcmeProblem("malformed", detail, 405)
    if isinstance(error, PayloadTooLarge):
        return AcmeProblem("malformed", detail, 413)
    if error.status == 500:
        return AcmeProblem("serverInternal", "the server failed to process the request", 500)
    return AcmeProblem("malformed", detail, error.status if 400 <= error.status < 500 else 400)
