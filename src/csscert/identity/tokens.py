"""X-Auth-Token tokens: Fernet (as Keystone issues them) over a compact claims record.

Pure: minting and parsing need only the keys. Whether a parsed token is still good (revoked,
user disabled) is the read model's question, not this module's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from csscert.errors import AuthenticationFailed

__all__ = ["IAM_PREFIX", "TOKEN_MAX_LENGTH", "IssuedToken", "TokenClaims", "TokenCodec", "fernet_context"]

IAM_PREFIX = "Incorrect IAM authentication information: "
TOKEN_MAX_LENGTH = 4096
_INVALID = IAM_PREFIX + "the token is invalid"


def fernet_context(key_id: str) -> str:
    """The sealing context of a token key (binds the sealed blob to its row)."""
    return f"fernet:{key_id}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    domain_id: str
    project_id: str | None
    methods: tuple[str, ...]
    audit_id: str
    issued_at: float  # epoch seconds, millisecond precision (user revocations compare against it)
    expires_at: int

    @property
    def audit_ids(self) -> tuple[str, ...]:
        """Every audit id whose revocation voids this token."""
        return (self.audit_id,)

    def to_json(self) -> bytes:
        return json.dumps(
            [
                self.user_id,
                self.domain_id,
                self.project_id,
                list(self.methods),
                self.audit_id,
                self.issued_at,
                self.expires_at,
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenClaims:
        try:
            user_id, domain_id, project_id, methods, audit_id, issued_at, expires_at = json.loads(raw)
            if project_id is not None and not isinstance(project_id, str):
                raise TypeError("project id")
            return cls(
                str(user_id),
                str(domain_id),
                project_id,
                tuple(str(m) for m in methods),
                str(audit_id),
                float(issued_at),
                int(expires_at),
            )
        except (ValueError, TypeError) as exc:
            raise AuthenticationFailed(_INVALID) from exc


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenCodec:
    """Fernet with rotating keys: the first key mints, every key validates."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    def mint(self, claims: TokenClaims) -> str:
        if self._fernet is None:
            raise AuthenticationFailed("no token keys; start the service once to create them")
        return self._fernet.encrypt_at_time(claims.to_json(), int(claims.issued_at)).decode()

    def parse(self, token: str) -> TokenClaims:
        """Decrypt and authenticate a token; any change to any character makes it invalid.

        Fernet alone is not enough for that: its base64 decoder skips characters outside the
        alphabet and ignores the unused low bits of the last character, so some one-character
        edits decode to the same bytes. Only the canonical encoding is accepted.
        """
        if self._fernet is None or len(token) > TOKEN_MAX_LENGTH:
            raise AuthenticationFailed(_INVALID)
        try:
            encoded = token.encode("ascii")
            if base64.urlsafe_b64encode(base64.urlsafe_b64decode(encoded)) != encoded:
                raise InvalidToken
            raw = self._fernet.decrypt(encoded)
        except (InvalidToken, UnicodeEncodeError, ValueError, binascii.Error) as exc:
            raise AuthenticationFailed(_INVALID) from exc
        return TokenClaims.from_json(raw)
