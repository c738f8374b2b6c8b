"""The checks on every request: X-Auth-Token, AK/SK (SDK-HMAC-SHA256) and Keystone password logins.

Each function takes the read model (:class:`~csscert.identity.directory.Directory`) and the
request's parts, and answers with the caller (:class:`Principal`) or raises
:class:`AuthenticationFailed` with a message safe to show. They are coroutines because a cache
miss is a query off the event loop; a hit never suspends. The pure signature arithmetic is in
:mod:`csscert.signing`; deciding whose key it is and whether the date is fresh is done here.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from csscert import signing
from csscert.errors import AuthenticationFailed
from csscert.identity.credentials import DUMMY_SECRET, password_matches
from csscert.identity.directory import Directory, Principal
from csscert.identity.tokens import IAM_PREFIX, TokenClaims
from csscert.model import Domain, User

__all__ = ["authenticate", "authenticate_signature", "authenticate_token", "known_token", "password_login"]

_BAD_SIGNATURE = IAM_PREFIX + "the access key is unknown or disabled, or the signature does not match"
_UNAUTHORIZED = "The request you have made requires authentication."


async def authenticate(
    directory: Directory,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> Principal:
    """Check the request's credentials. ``headers`` has lower-case names; path is decoded."""
    token = headers.get("x-auth-token")
    if token:
        return await authenticate_token(directory, token, now)
    authorization = headers.get("authorization")
    if authorization:
        return await authenticate_signature(
            directory, authorization, method, path, query_string, headers, body, now
        )
    raise AuthenticationFailed(IAM_PREFIX + "the request carries neither X-Auth-Token nor an AK/SK signature")


def known_token(directory: Directory, token: str, now: float) -> Principal | None:
    """The caller of a token whose verdict is remembered, without suspending (the hot path); None
    when it must be checked (:func:`authenticate_token`). Raises for a remembered refusal."""
    verdict = directory.verdict(token)
    if verdict is None:
        return None
    if isinstance(verdict, str):
        raise AuthenticationFailed(verdict)
    if now >= verdict.claims.expires_at:  # type: ignore[union-attr]
        raise AuthenticationFailed(IAM_PREFIX + "the token has expired")
    return verdict


async def authenticate_token(directory: Directory, token: str, now: float) -> Principal:
    """A token's caller. The verdict is computed once per token and read model; only expiry
    depends on the clock and is checked on every request (the 401 path must not be the slow one)."""
    verdict = directory.verdict(token)
    if verdict is None:
        verdict = await _verify_token(directory, token, now)
    elif isinstance(verdict, str):
        raise AuthenticationFailed(verdict)
    assert verdict.claims is not None
    if now >= verdict.claims.expires_at:
        raise AuthenticationFailed(IAM_PREFIX + "the token has expired")
    return verdict


async def _verify_token(directory: Directory, token: str, now: float) -> Principal:
    generation = directory.generation
    try:
        claims = directory.codec.parse(token)
    except AuthenticationFailed as exc:
        directory.remember_refusal(token, exc)
        raise
    if now >= claims.expires_at:  # time-bound, so not remembered
        raise AuthenticationFailed(IAM_PREFIX + "the token has expired")
    try:
        principal = await _token_principal(directory, claims)
    except AuthenticationFailed as exc:
        directory.remember_refusal(token, exc)
        raise
    directory.remember_accepted(token, principal, generation)
    return principal


def _void_for_user(claims: TokenClaims, user: User) -> bool:
    """Issued before the user's "tokens valid after" (password change, disable: Keystone's
    revocation event for a user)."""
    cutoff = user.tokens_valid_after_ms
    return cutoff is not None and claims.issued_at * 1000 < cutoff


async def _token_principal(directory: Directory, claims: TokenClaims) -> Principal:
    user = await directory.user(claims.user_id)
    if (user is not None and _void_for_user(claims, user)) or await directory.is_revoked(claims):
        raise AuthenticationFailed(IAM_PREFIX + "the token has been revoked")
    if user is None or not user.enabled or user.domain_id != claims.domain_id:
        raise AuthenticationFailed(IAM_PREFIX + "the token's user is disabled or deleted")
    domain = await directory.domain(user.domain_id)
    if domain is None or not domain.enabled:
        raise AuthenticationFailed(IAM_PREFIX + "the token's domain is disabled")
    return Principal(user, domain, "token", claims.project_id, claims)


async def authenticate_signature(
    directory: Directory,
    authorization: str,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> Principal:
    try:
        parsed = signing.parse_authorization(authorization)
        sdk_date = headers.get("x-sdk-date")
        if not sdk_date:
            raise signing.SignatureFormatError("the X-Sdk-Date header is missing")
        signed_at = signing.parse_sdk_date(sdk_date).timestamp()
    except signing.SignatureFormatError as exc:
        raise AuthenticationFailed(IAM_PREFIX + str(exc)) from exc
    if "x-sdk-date" not in parsed.signed_headers or "host" not in parsed.signed_headers:
        raise AuthenticationFailed(IAM_PREFIX + "SignedHeaders must include host and x-sdk-date")
    skew = directory.settings.sdk_date_skew_seconds
    if abs(now - signed_at) > skew:
        window = f"{skew // 60} minutes" if skew % 60 == 0 else f"{skew} seconds"
        raise AuthenticationFailed(
            IAM_PREFIX + f"X-Sdk-Date {sdk_date} is more than {window} away from the server's time"
        )
    if headers.get("x-security-token"):
        raise AuthenticationFailed(
            IAM_PREFIX + "temporary security credentials (X-Security-Token) are not supported by this service"
        )
    values: dict[str, str] = {}
    for name in parsed.signed_headers:
        value = headers.get(name)
        if value is None:
            raise AuthenticationFailed(IAM_PREFIX + f"signed header {name!r} is not in the request")
        values[name] = value
    # The SDK signs X-Sdk-Content-Sha256 whenever it sets it; an unsigned one is ignored, and a
    # declared digest must be the body's (only UNSIGNED-PAYLOAD leaves the body unsigned).
    declared = values.get(signing.CONTENT_HASH_HEADER)
    if (
        body
        and declared is not None
        and declared != signing.UNSIGNED_PAYLOAD
        and declared != hashlib.sha256(body).hexdigest()
    ):
        raise AuthenticationFailed(IAM_PREFIX + "X-Sdk-Content-Sha256 does not match the request body")
    entry = await directory.access_key(parsed.access)
    secret = entry[1] if entry is not None else DUMMY_SECRET  # same work either way
    expected = signing.request_signature(
        secret,
        sdk_date,
        method,
        path,
        query_string,
        values,
        parsed.signed_headers,
        signing.payload_hash(body, declared),
        decoded_path=True,
    )
    matches = signing.signatures_equal(expected, parsed.signature)
    if entry is None or not matches or not entry[0].enabled:
        raise AuthenticationFailed(_BAD_SIGNATURE)
    user = await directory.user(entry[0].user_id)
    if user is None or not user.enabled:
        raise AuthenticationFailed(_BAD_SIGNATURE)
    domain = await directory.domain(user.domain_id)
    if domain is None or not domain.enabled:
        raise AuthenticationFailed(_BAD_SIGNATURE)
    return Principal(user, domain, "aksk", None, access_key=parsed.access)


async def password_login(
    directory: Directory, user_id: str | None, user_name: str | None, domain: Domain | None, password: str
) -> User:
    """Verify a password. argon2 is slow on purpose: it runs in a worker thread, never on the loop."""
    user: User | None = None
    if user_id:
        user = await directory.user(user_id)
    elif user_name and domain is not None:
        user = await directory.user_by_name(domain.id, user_name)
    stored = user.password_hash if user is not None else None
    if not await asyncio.to_thread(password_matches, stored, password) or user is None:
        raise AuthenticationFailed(_UNAUTHORIZED)
    user_domain = await directory.domain(user.domain_id)
    if not user.enabled or user_domain is None or not user_domain.enabled:
        raise AuthenticationFailed(_UNAUTHORIZED)
    return user
