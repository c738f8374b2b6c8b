"""X-Auth-Token tokens: Fernet (as Keystone issues them) over a compact claims record.

Pure: minting and parsing need only the keys. Whether a parsed token is still good (revoked,
user disabled) is the read model's question, not this module's.

Audit chains: every token has its own audit id, and a token got with a token (a rescope) also
carries its parent's chain. Keystone keeps only ``[own, original]`` (the first token of the
chain); csscert keeps every ancestor in the claims, so revoking *any* token of a chain refuses
every token derived from it, not only when the first one is revoked. The wire still shows
Keystone's two ids (:attr:`TokenClaims.keystone_audit_ids`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from csscert.errors import AccessDenied, AuthenticationFailed

__all__ = [
    "IAM_PREFIX",
    "MAX_AUDIT_CHAIN",
    "TOKEN_MAX_LENGTH",
    "IssuedToken",
    "TokenClaims",
    "TokenCodec",
    "fernet_context",
]

IAM_PREFIX = "Incorrect IAM authentication information: "
TOKEN_MAX_LENGTH = 4096
# Audit ids one token carries: its own and its ancestors'. Each rescope adds one (about 25 bytes
# of payload, 33 characters of token); past this a client logs in again to start a new chain.
MAX_AUDIT_CHAIN = 8
_INVALID = IAM_PREFIX + "the token is invalid"


def fernet_context(key_id: str) -> str:
    """The sealing context of a token key (binds the sealed blob to its row)."""
    return f"fernet:{key_id}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says. ``audit_ids`` is the token's own audit id first, then its parent's,
    and so on back to the token of the chain that was got with a password (last)."""

    user_id: str
    domain_id: str
    project_id: str | None
    methods: tuple[str, ...]
    audit_ids: tuple[str, ...]
    issued_at: float  # epoch seconds, millisecond precision (user revocations compare against it)
    expires_at: int

    @property
    def audit_id(self) -> str:
        """This token's own audit id (what revoking this token records)."""
        return self.audit_ids[0]

    @property
    def keystone_audit_ids(self) -> list[str]:
        """``audit_ids`` as Keystone shows them: ``[own]``, or ``[own, first of the chain]``."""
        if len(self.audit_ids) == 1:
            return [self.audit_ids[0]]
        return [self.audit_ids[0], self.audit_ids[-1]]

    def chain_for_child(self, child_audit_id: str) -> tuple[str, ...]:
        """The ``audit_ids`` of a token got with this one."""
        if len(self.audit_ids) >= MAX_AUDIT_CHAIN:
            raise AccessDenied(
                f"the token was got from a chain of {len(self.audit_ids)} tokens, the most csscert "
                "follows; log in again with a password or an access key to start a new chain"
            )
        return (child_audit_id, *self.audit_ids)

    def to_json(self) -> bytes:
        # [user, domain, project, methods, own audit id, issued, expires, ancestors]: the first
        # seven are the original record, so tokens minted before chains existed still parse.
        return json.dumps(
            [
                self.user_id,
                self.domain_id,
                self.project_id,
                list(self.methods),
                self.audit_ids[0],
                self.issued_at,
                self.expires_at,
                list(self.audit_ids[1:]),
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenClaims:
        try:
            fields = json.loads(raw)
            if not isinstance(fields, list) or len(fields) not in (7, 8):
                raise TypeError("claims")
            user_id, domain_id, project_id, methods, audit_id, issued_at, expires_at = fields[:7]
            ancestors = fields[7] if len(fields) == 8 else []
            if project_id is not None and not isinstance(project_id, str):
                raise TypeError("project id")
            if not isinstance(ancestors, list) or len(ancestors) >= MAX_AUDIT_CHAIN:
                raise TypeError("audit chain")
            return cls(
                str(user_id),
                str(domain_id),
                project_id,
                tuple(str(m) for m in methods),
                (str(audit_id), *(str(a) for a in ancestors)),
                float(issued_at),
                int(expires_at),
            )
        except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: int(Infinity)
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
