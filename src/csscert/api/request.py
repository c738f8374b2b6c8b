"""The request value object every handler receives, whatever server (RSGI or ASGI) brought it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_BODY", "Request"]

MAX_BODY = 64 * 1024  # bytes; no route needs more, and a larger body is refused while it streams


@dataclass(slots=True)
class Request:
    """One HTTP request. ``headers`` has lower-case names; ``path`` is percent-decoded.

    ``body_too_large`` is set (and ``body`` left empty) when the body passed :data:`MAX_BODY`:
    the route's error shape then answers it, so the body is never buffered past the limit;
    ``body_timed_out`` when it did not arrive within the body deadline.

    ``client`` is the caller's address (the peer's, or the one a trusted proxy forwarded). The
    ``caller_*`` fields and ``project_id`` start empty; a handler fills them once it knows who
    called (for the access log and audit records): the user id, the access key or the token's
    audit id, and the project the request acted on. Plain attribute writes: cheap on the hot path.
    """

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes
    scheme: str
    request_id: str
    body_too_large: bool = False
    body_timed_out: bool = False
    client: str = ""
    route: str = ""
    caller_user: str = ""
    caller_credential: str = ""
    project_id: str = ""
