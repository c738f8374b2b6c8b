"""Encryption at rest for every secret the store keeps (CA keys, secret keys, token keys).

A single master key, never stored in the database, seals each secret with AES-256-GCM. The
record's identity is bound as associated data, so a sealed blob copied onto another row fails
to open instead of silently becoming that row's secret.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from csscert.errors import ConfigurationError
from csscert.files import write_new

__all__ = ["MASTER_KEY_FILE", "MasterKeyError", "Sealer", "generate_master_key", "load_master_key"]

_VERSION = b"\x01"
_NONCE_BYTES = 12
MASTER_KEY_FILE = "master.key"


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
    """Seals and opens secrets under the master key; ``context`` names the record they belong to."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)
        self._master_key = master_key

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256 of the master key): every host sharing the
        master key derives the same one, and none of them stores it (the console's session
        cookies and CSRF tokens, for instance)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"csscert/" + purpose.encode())
        return hkdf.derive(self._master_key)

    def seal(self, secret: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        blob = _VERSION + nonce + self._aead.encrypt(nonce, secret, context.encode())
        return base64.b64encode(blob).decode()

    def open(self, sealed: str, context: str) -> bytes:
        try:
            blob = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MasterKeyError(f"sealed secret for {context} is corrupt") from exc
        if blob[:1] != _VERSION or len(blob) < 1 + _NONCE_BYTES + 16:
            raise MasterKeyError(f"sealed secret for {context} has an unknown format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, context.encode())
        except InvalidTag as exc:
            raise MasterKeyError(f"the master key does not open the secret for {context}") from exc
