"""Encryption at rest for every secret the store keeps (CA keys, secret keys, token keys).

A single master key, never stored in the database, seals each secret with AES-256-GCM. The
record's identity is bound as associated data, so a sealed blob copied onto another row fails
to open instead of silently becoming that row's secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from csscert.errors import ConfigurationError
from csscert.files import write_new

__all__ = [
    "MASTER_KEY_CHECK",
    "MASTER_KEY_FILE",
    "NEW_MASTER_KEY_FILE",
    "MasterKeyError",
    "Sealer",
    "decode_master_key",
    "generate_master_key",
    "key_check",
    "load_master_key",
]

_VERSION = b"\x01"
_NONCE_BYTES = 12
MASTER_KEY_FILE = "master.key"
#: Written by ``master-key rotate`` before its transaction; renamed over ``master.key`` after it
#: (docs/architecture.md, "Master-key rotation").
NEW_MASTER_KEY_FILE = "master.key.new"
#: The meta row that names (by :func:`key_check`) the master key every sealed column is under.
MASTER_KEY_CHECK = "master_key_check"
_CHECK_INFO = b"csscert master key check v1"


class MasterKeyError(ConfigurationError):
    """The master key is missing, malformed, or does not open what the store holds."""


def _decode_key(text: str, source: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError(f"the master key in {source} is not valid base64url") from exc
    if len(raw) != 32:
        raise MasterKeyError(f"the master key in {source} must decode to exactly 32 bytes")
    return raw


def decode_master_key(text: str, source: str) -> bytes:
    """A base64url master key as 32 bytes (:class:`MasterKeyError` naming ``source`` if not)."""
    return _decode_key(text, source)


def key_check(master_key: bytes) -> str:
    """A public name of a master key: HMAC-SHA256 of a fixed label under a key derived from it
    with HKDF (its own ``info``, so nothing else ever uses that derived key). It tells whether a
    given key is the one that sealed some data and reveals nothing about the key itself."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CHECK_INFO).derive(master_key)
    return hmac.new(derived, b"csscert master key", "sha256").hexdigest()


def generate_master_key() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode().rstrip("=")


def load_master_key(explicit: str | None, data_dir: Path, *, create: bool) -> bytes:
    """The master key from ``CSSCERT_MASTER_KEY``, else from ``<data_dir>/master.key``.

    The file is created once (mode 0600, published atomically so two first starts cannot race
    each other into two different keys, or one of them into reading a half-written file).
    """
    if explicit:
        return _decode_key(explicit, "CSSCERT_MASTER_KEY")
    path = data_dir / MASTER_KEY_FILE
    if path.exists():
        return _decode_key(path.read_text(), str(path))
    if not create:
        raise MasterKeyError(
            f"no master key at {path.resolve()}: this is not a data directory csscert made (or its "
            "master.key was removed); set CSSCERT_MASTER_KEY, restore the file, or point --data-dir at "
            "other data"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    key_text = generate_master_key()
    # Staged then linked (csscert.files): a concurrent first start sees either no file or the
    # complete key, never an empty one, and the loser of the race adopts the winner's key.
    try:
        write_new(path, (key_text + "\n").encode(), 0o600)
    except FileExistsError:
        return _decode_key(path.read_text(), str(path))
    return _decode_key(key_text, str(path))


class Sealer:
    """Seals and opens secrets under the master key; ``context`` names the record they belong to.

    It may know several keys (during a rotation: the current one and the next or previous one).
    It seals under its *primary* key and opens with whichever key fits. ``source`` re-reads the
    keys from where they live (the data directory's key files, or the settings): when a blob
    opens under none of the known keys, the sealer re-reads them once and tries again, so a
    running server picks up a key another process rotated to without a restart.
    """

    def __init__(
        self, master_key: bytes, *others: bytes, source: Callable[[], Sequence[bytes]] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._source = source
        self._keys: list[tuple[bytes, AESGCM]] = []
        self._set([master_key, *others])

    def _set(self, keys: Sequence[bytes]) -> None:
        unique = list(dict.fromkeys(keys))
        self._keys = [(key, AESGCM(key)) for key in unique]

    @property
    def check(self) -> str:
        """:func:`key_check` of the primary key (the one new secrets are sealed under)."""
        return key_check(self._keys[0][0])

    def checks(self) -> list[str]:
        return [key_check(key) for key, _ in self._keys]

    def known_keys(self) -> list[bytes]:
        """The keys known, primary first (for custody's start-up check; never shown)."""
        return [key for key, _ in self._keys]

    def knows(self, check: str) -> bool:
        return check in self.checks()

    def reload(self) -> None:
        """Re-read the keys from the source (if any), keeping the primary first when still there."""
        if self._source is None:
            return
        fresh = list(self._source())
        if not fresh:
            return
        with self._lock:
            primary = self._keys[0][0]
            self._set([primary, *fresh] if primary in fresh else fresh)

    def follow(self, check: str | None) -> bool:
        """Make the key named ``check`` the primary (re-reading the source if it is not known
        yet). True when this sealer now seals under that key."""
        if check is None:
            return True
        if not self.knows(check):
            self.reload()
        with self._lock:
            for index, (key, _) in enumerate(self._keys):
                if key_check(key) == check:
                    keys = [k for k, _ in self._keys]
                    self._set([keys[index], *keys[:index], *keys[index + 1 :]])
                    return True
        return False

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256 of the primary master key): every host
        sharing the master key derives the same one, and none of them stores it (the console's
        session cookies and CSRF tokens, for instance). A master-key rotation changes it, which
        ends every console session (documented in ADR 0008)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"csscert/" + purpose.encode())
        return hkdf.derive(self._keys[0][0])

    def seal(self, secret: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        blob = _VERSION + nonce + self._keys[0][1].encrypt(nonce, secret, context.encode())
        return base64.b64encode(blob).decode()

    def open(self, sealed: str, context: str) -> bytes:
        try:
            blob = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MasterKeyError(f"sealed secret for {context} is corrupt") from exc
        if blob[:1] != _VERSION or len(blob) < 1 + _NONCE_BYTES + 16:
            raise MasterKeyError(f"sealed secret for {context} has an unknown format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        for attempt in range(2):
            for _, aead in self._keys:
                try:
                    return aead.decrypt(nonce, ciphertext, context.encode())
                except InvalidTag:
                    continue
            if attempt == 0 and self._source is not None:
                self.reload()  # rotated by another process meanwhile?
            else:
                break
        raise MasterKeyError(f"the master key does not open the secret for {context}")
