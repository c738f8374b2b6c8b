"""The change signal: one shared 8-byte word that says "the store changed".

Writers overwrite the word in place (``pwrite``) after every commit. Readers map the file
once and compare the word on every request: a memory read, no system call, and a change made
by any process on the machine is visible to the very next request. The database revision,
polled in the background, backs it up (another host, or a file replaced behind our back).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

__all__ = ["ChangeSignal"]

_WORD = 8


class ChangeSignal:
    """Writer and reader side of the shared word kept in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._inode: int | None = None

    def bump(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, os.urandom(_WORD), 0)
        finally:
            os.close(fd)

    def current(self) -> bytes:
        """The word as it is now (``b""`` while there is no file to map)."""
        mapped = self._map
        if mapped is None:
            mapped = self._open()
            if mapped is None:
                return b""
        return mapped[:_WORD]

    def refresh(self) -> bool:
        """Re-map when the file was replaced or removed; True when the mapping changed."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if inode == self._inode:
            return False
        self._map = None  # the request path maps the new file on its next read
        self._inode = None
        return True

    def _open(self) -> mmap.mmap | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < _WORD:  # new file: give it its word (never shrink one)
                os.pwrite(fd, os.urandom(_WORD), 0)
            mapped = mmap.mmap(fd, _WORD, access=mmap.ACCESS_READ)
            self._inode = os.fstat(fd).st_ino
        except OSError:
            return None
        finally:
            os.close(fd)
        self._map = mapped
        return mapped
