"""Secrets of identities: access/secret key generation, password hashing, and their sealing contexts.

The dummy values let a check for an unknown user or key cost the same as one for a known one,
so timing tells an attacker nothing about which names exist.
"""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from csscert.errors import InvalidRequest

__all__ = [
    "DUMMY_SECRET",
    "generate_access_key",
    "generate_secret_key",
    "hash_password",
    "password_matches",
    "sk_context",
]

_AK_ALPHABET = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits
_password_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))
DUMMY_SECRET = secrets.token_bytes(40)  # signs for unknown access keys: same work either way


def _random_text(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly from ``alphabet`` (rejection sampling over random
    bytes: about 20x faster than ``secrets.choice`` per character, which a bulk import feels)."""
    limit = 256 - 256 % len(alphabet)  # bytes at or above this would favour the first letters
    out: list[str] = []
    while len(out) < length:
        out.extend(alphabet[b % len(alphabet)] for b in secrets.token_bytes(length * 2) if b < limit)
    return "".join(out[:length])


def generate_access_key() -> str:
    return _random_text(_AK_ALPHABET, 20)


def generate_secret_key() -> str:
    return _random_text(_SK_ALPHABET, 40)


def sk_context(access: str) -> str:
    """The sealing context of a secret key (binds the sealed blob to its access key)."""
    return f"ak:{access}"


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidRequest("password must be at least 8 characters")
    return _password_hasher.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """argon2 verification; slow on purpose (call it off the event loop). ``stored`` None (no
    such user, or no password) still pays the full cost, then answers False."""
    try:
        if stored is None:
            _password_hasher.verify(_DUMMY_HASH, password)
            return False
        return _password_hasher.verify(stored, password)
    except (VerificationError, InvalidHashError, VerifyMismatchError):
        return False
