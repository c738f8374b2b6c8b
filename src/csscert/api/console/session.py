"""The console's session cookie and CSRF tokens: pure functions of keys derived from the master key.

The cookie holds the session's Keystone token, sealed (AES-256-GCM) under a key derived from the
master key with HKDF, so the browser never holds a usable token in clear, and every host that
shares the database and the master key accepts the cookie any of them set. The token is still
checked through the read model on every request (expiry, revocation, a disabled user); the
sealed expiry only lets a stale cookie be refused without a lookup.

CSRF tokens are HMACs, under a second derived key, of what they are bound to: the session's
audit id once signed in, the pre-session nonce (a cookie of its own) on the sign-in form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from csscert.sealing import Sealer

__all__ = ["LOGIN_COOKIE", "MAX_COOKIE", "SESSION_COOKIE", "SessionCodec", "cookie_value"]

SESSION_COOKIE = "csscert_session"
LOGIN_COOKIE = "csscert_login"
MAX_COOKIE = 4096  # characters: a longer value is not ours (a browser caps cookies about there)
_VERSION = b"\x01"
_NONCE = 12
_AAD = b"csscert console session v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def cookie_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` header (the first one), or None."""
    raw = headers.get("cookie")
    if not raw or len(raw) > 4 * MAX_COOKIE:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            value = value.strip().strip('"')
            return value if 0 < len(value) <= MAX_COOKIE else None
    return None


class SessionCodec:
    """Seals tokens into cookie values and makes CSRF tokens; the keys never leave it."""

    def __init__(self, seal_key: bytes, csrf_key: bytes) -> None:
        self._aead = AESGCM(seal_key)
        self._csrf_key = csrf_key

    @classmethod
    def from_sealer(cls, sealer: Sealer) -> SessionCodec:
        return cls(sealer.derive_key("console-session"), sealer.derive_key("console-csrf"))

    def seal(self, token: str, expires_at: float) -> str:
        """The cookie value of a session whose token expires at ``expires_at`` (Unix time)."""
        nonce = os.urandom(_NONCE)
        plain = f"{int(expires_at)}:{token}".encode()
        return _b64(_VERSION + nonce + self._aead.encrypt(nonce, plain, _AAD))

    def open(self, value: str, now: float) -> str | None:
        """The token in a cookie value, or None when it was tampered with, sealed under another
        key, malformed, or its token has expired."""
        blob = _unb64(value) if len(value) <= MAX_COOKIE else None
        if blob is None or blob[:1] != _VERSION or len(blob) < 1 + _NONCE + 16:
            return None
        try:
            plain = self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], _AAD)
        except InvalidTag:
            return None
        expires, sep, token = plain.decode("ascii", "replace").partition(":")
        if not sep or not expires.isdigit() or now >= int(expires) or not token:
            return None
        return token

    def csrf(self, binding: str) -> str:
        """The CSRF token of forms bound to ``binding`` (a session's audit id, a login nonce)."""
        return _b64(hmac.new(self._csrf_key, binding.encode(), hashlib.sha256).digest())

    def csrf_ok(self, binding: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf(binding), given)

    @staticmethod
    def new_nonce() -> str:
        """A fresh pre-session nonce (the sign-in form's CSRF binding)."""
        return _b64(os.urandom(18))
